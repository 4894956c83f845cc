"""A stream event driven over HTTP the way Gradio 6's browser client does it (for tests/test_live.py).

A stream is one queue event: ``POST /gradio_api/queue/join`` with the first frame (answers the
event id), then each further frame ``POST /gradio_api/stream/{event_id}``, and
``POST .../stream/{event_id}/close`` to stop; the answers arrive on the session's event stream
(``GET /gradio_api/queue/data``) as ``process_streaming`` messages, then ``process_completed``.
A webcam frame travels as a JPEG ``data:`` URL, as the browser's canvas makes it.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
import uuid
from typing import Any

import httpx
import numpy as np
from PIL import Image


def frame_data_url(frame: np.ndarray, quality: int = 90) -> str:
    """A uint8 (H, W, 3) RGB frame as the browser sends it: a JPEG ``data:`` URL."""
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, "JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def stream_dependency(url: str, elem_id: str | None = None) -> dict:
    """The config of the app's stream event (of the component with ``elem_id``, if given)."""
    config = httpx.get(url.rstrip("/") + "/config", timeout=30).json()
    components = {c["id"]: c for c in config["components"]}
    for dep in config["dependencies"]:
        for target, event in dep["targets"]:
            if event == "stream" and (elem_id is None or components[target].get("props", {}).get("elem_id") == elem_id):
                return {**dep, "trigger_id": target}
    raise LookupError(f"no stream event on {elem_id or 'any component'} at {url}")


class StreamClient:
    """One visitor streaming to one stream event; ``messages`` collects (monotonic time, message)."""

    def __init__(self, url: str, dependency: dict, extra_inputs: list[Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.dep = dependency
        self.extra = list(extra_inputs or [])
        self.session_hash = uuid.uuid4().hex[:11]
        self.messages: list[tuple[float, dict]] = []
        self.event_id: str | None = None
        self.http = httpx.Client(timeout=60)
        self._listener = threading.Thread(target=self._listen, daemon=True)
        self._listening = threading.Event()

    def _body(self, frame: np.ndarray) -> dict:
        image = {"url": frame_data_url(frame), "meta": {"_type": "gradio.FileData"}}
        return {"data": [image, *self.extra], "event_data": None, "fn_index": self.dep["id"],
                "trigger_id": self.dep["trigger_id"], "session_hash": self.session_hash}

    def _listen(self) -> None:
        with httpx.stream("GET", self.url + "/gradio_api/queue/data", params={"session_hash": self.session_hash},
                          timeout=120) as response:
            self._listening.set()
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                self.messages.append((time.monotonic(), message))
                if message.get("msg") == "process_completed":
                    return

    def start(self, frame: np.ndarray) -> None:
        """Join the queue with the first frame and start listening for answers."""
        response = self.http.post(self.url + "/gradio_api/queue/join", json=self._body(frame))
        response.raise_for_status()
        self.event_id = response.json()["event_id"]
        self._listener.start()
        self._listening.wait(30)

    def send(self, frame: np.ndarray) -> None:
        """Post the next frame (returns at once; the server answers on the event stream)."""
        self.http.post(f"{self.url}/gradio_api/stream/{self.event_id}", json=self._body(frame)).raise_for_status()

    def close(self, timeout: float = 30) -> None:
        """Stop the stream and wait for its last answer."""
        self.http.post(f"{self.url}/gradio_api/stream/{self.event_id}/close")
        self._listener.join(timeout)
        self.http.close()

    def wait_for(self, n: int, timeout: float = 120) -> None:
        """Wait until ``n`` answers (``process_streaming``) have arrived."""
        end = time.monotonic() + timeout
        while len(self.answers()) < n and time.monotonic() < end:
            time.sleep(0.05)

    def answers(self) -> list[tuple[float, list]]:
        """(arrival time, output values) of every answered frame, in order."""
        return [(t, m["output"]["data"]) for t, m in self.messages
                if m.get("msg") == "process_streaming" and m.get("output")]
