"""The Analyze request: read the photo (and forget it), run the ``Predictor``, build the page's outputs.

``AnalyzeHandler`` serves both the page (``handler(...)``: every output) and the ``/predict`` API
(``handler.api``); ``ResultFiles`` holds the downloadable JSON results for a short while.
"""

from __future__ import annotations

import atexit
import json
import logging
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import pandas as pd

from fer_demo import limits
from fer_demo.io import InvalidImageError, read_bytes
from fer_demo.ui.options import (CAM_CHOICES, DEFAULT_CAM, MEMORY_TTL_MIN, NO_CAM, NO_FACE_HINT, PREDICTED,
                                 TARGET_CHOICES, TTA_CHOICES)
from fer_demo.ui.render import annotations, format_summary, gallery_items, probability_table, result_dict
from fer_demo.uploads import DelayedDeleter, RecentUploads, discard, file_paths

if TYPE_CHECKING:  # the handler only needs the Predictor's interface; app.main builds one
    from fer_demo.pipeline import Prediction, Predictor

log = logging.getLogger(__name__)

# Result JSON files are handed to Gradio, which copies them into its own cache on return; the
# originals are deleted this many seconds later (the copy is removed by ``delete_cache``).
RESULT_FILE_TTL_S = 60
PROBS_TITLE = "face {face}: probabilities"


class ResultFiles:
    """Per-request JSON files in a private temp folder, deleted soon after Gradio copied them.

    The folder is made on the first write and removed when the process exits.
    """

    def __init__(self, ttl_s: float = RESULT_FILE_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._root: Path | None = None

    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="fer-demo-results-"))
            atexit.register(shutil.rmtree, self._root, ignore_errors=True)
        return self._root

    def write(self, data: dict) -> Path:
        self.prune()
        folder = self.root / uuid.uuid4().hex
        folder.mkdir()
        path = folder / "fer_result.json"
        path.write_text(json.dumps(data, indent=2) + "\n")
        return path

    def prune(self) -> None:
        if self._root is None:
            return
        cutoff = time.time() - self.ttl_s
        for folder in self._root.iterdir():
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Outputs:
    """What one analysis shows; ``as_tuple`` is the order of the Analyze button's outputs."""

    annotated: Any
    gallery: list
    probabilities: Any
    table: pd.DataFrame
    summary: str
    result: dict | None
    result_file: str | None
    gallery_owners: dict

    def as_tuple(self) -> tuple:
        return (self.annotated, self.gallery, self.probabilities, self.table, self.summary, self.result,
                self.result_file, self.gallery_owners)


class AnalyzeHandler:
    """Runs the predictor for the page (``handler(...)``: every output) and the API (``handler.api``).

    Both turn ``InvalidImageError`` (not an image, too big, ...) into ``gr.Error`` with its message;
    any other failure is logged (without image data) and shown as a generic error. "No face" is a
    warning and empty results, not an error.

    Uploads: a file inside ``upload_folder`` (Gradio's cache) is deleted as soon as it has been
    read, unless ``keep()`` lists it (the example photos); its bytes go to ``recent`` (memory) so
    the same upload can be analysed again with other settings. ``release_outputs`` deletes the
    result images of a request ``limits.OUTPUT_GRACE_S`` after the page received them.
    """

    def __init__(self, predictor: Predictor, result_files: ResultFiles | None = None,
                 upload_folder: str | Path | None = None, recent: RecentUploads | None = None,
                 keep=lambda: (), output_grace_s: float | None = None) -> None:
        self.predictor = predictor
        self.result_files = result_files or ResultFiles()
        self.upload_folder = Path(upload_folder or gr.utils.get_upload_folder())
        self.recent = RecentUploads() if recent is None else recent
        self.keep = keep
        grace = limits.OUTPUT_GRACE_S if output_grace_s is None else output_grace_s
        self.outputs_deleter = DelayedDeleter(self.upload_folder, grace, keep=keep)

    def photo(self, image: str | dict | None, session: str | None = None) -> bytes:
        """The bytes of the requested photo; the uploaded file itself is deleted once read."""
        if isinstance(image, dict):  # a FileData payload: only its server-side path matters
            image = image.get("path")
        if image is None:
            raise gr.Error("Upload a photo, take one with the webcam or pick an example first.",
                           print_exception=False)
        path = Path(image)
        if not path.is_file():
            data = self.recent.get(str(path), session)
            if data is None:
                raise gr.Error(f"This photo is no longer on the server: uploads are deleted once analysed "
                               f"and kept in memory for {MEMORY_TTL_MIN} minutes for re-runs. Please upload "
                               "it again.", print_exception=False)
            return data
        try:
            data = read_bytes(path)
        except InvalidImageError as e:  # too large, unreadable: the message is for the user
            discard(path, self.upload_folder, self.keep())
            raise gr.Error(str(e).removeprefix(f"{path}: "), print_exception=False) from None
        # Memory first, then delete: a concurrent request for the same upload finds one or the other.
        self.recent.put(str(path), data, session)
        discard(path, self.upload_folder, self.keep())
        return data

    def run(self, image: str | dict | None, cam: str, target: str, tta: str,
            session: str | None = None) -> tuple[Prediction, float, str | None, str | None]:
        """Validate the request and analyse it: (prediction, seconds, cam or None, target or None).

        ``image``: a file path, or Gradio's upload payload (``{"path": ..., ...}``, what the events
        receive with ``preprocess=False``). ``session``: the browser session, for ``recent``.
        """
        for name, value, choices in (("explanation method", cam, CAM_CHOICES), ("target", target, TARGET_CHOICES),
                                     ("test-time augmentation", tta, TTA_CHOICES)):
            if value not in choices:
                raise gr.Error(f"Unknown {name} {value!r}. Choose one of {choices}.", print_exception=False)
        data = self.photo(image, session)
        cam_arg = None if cam == NO_CAM else cam
        target_arg = None if target == PREDICTED else target
        start = time.perf_counter()
        try:
            prediction = self.predictor.analyze(data, cam=cam_arg, target=target_arg, tta=tta)
        except InvalidImageError as e:  # not an image, too large, ...: the message is for the user
            raise gr.Error(str(e), print_exception=False) from None
        except Exception:  # noqa: BLE001 - the UI boundary: log it, keep serving, show no traceback
            log.exception("analysis failed")
            raise gr.Error("Something went wrong while analysing this photo. The error has been logged; "
                           "please try another photo.", print_exception=False) from None
        return prediction, time.perf_counter() - start, cam_arg, target_arg

    def api(self, image: str | dict | None, cam: str = DEFAULT_CAM, target: str = PREDICTED, tta: str = "none",
            request: gr.Request = None) -> dict:
        """The ``/predict`` endpoint: the result as a JSON-able dict (see ``result_dict``)."""
        prediction, seconds, cam_arg, target_arg = self.run(image, cam, target, tta, _session(request))
        return result_dict(prediction, seconds, cam_arg, target_arg, tta)

    def __call__(self, image: str | dict | None, cam: str = DEFAULT_CAM, target: str = PREDICTED,
                 tta: str = "none", request: gr.Request = None) -> tuple:
        """The Analyze button: every output of the page, in ``Outputs`` order.

        A visitor's request (``request`` set) also gets a toast when there is no face; caching the
        examples at start-up (no request) does not, or Gradio prints it as a UserWarning.
        """
        prediction, seconds, cam_arg, target_arg = self.run(image, cam, target, tta, _session(request))
        return self.outputs(prediction, seconds, cam_arg, target_arg, tta, notify=request is not None).as_tuple()

    def release_outputs(self, *values: Any) -> None:
        """After the page got a result: delete its image files once the browser has fetched them.

        Gets the output components' values as sent to the browser (file payloads with server paths).
        """
        self.outputs_deleter.schedule(file_paths(values))

    def forget_session(self, request: gr.Request = None) -> None:
        """The tab was closed or the page cleared: drop the photos this session sent from memory."""
        session = _session(request)
        if session:
            self.recent.drop_session(session)

    def outputs(self, prediction: Prediction, seconds: float, cam: str | None, target: str | None,
                tta: str, notify: bool = True) -> Outputs:
        result = result_dict(prediction, seconds, cam, target, tta)
        result_file = str(self.result_files.write(result))
        summary = format_summary(prediction, seconds, cam, target, tta)
        annotated = annotations(prediction)  # a plain value (see render.annotations: cached examples)
        if not prediction.faces:
            if notify:
                gr.Warning(f"No face found in this photo. {NO_FACE_HINT}")
            return Outputs(annotated, [], gr.Label(value=None, label="Probabilities"), probability_table([]),
                           summary, result, result_file, {"owners": [], "faces": []})
        items, owners = gallery_items(prediction, cam)
        probs = gr.Label(value=dict(prediction.faces[0].probabilities), label=PROBS_TITLE.format(face=1))
        state = {"owners": owners, "faces": [dict(f.probabilities) for f in prediction.faces]}
        return Outputs(annotated, items, probs, probability_table(prediction.faces), summary, result,
                       result_file, state)


def _session(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


def select_face(state: dict | None, evt: gr.SelectData) -> Any:
    """Gallery click -> the probability bars of the clicked item's face."""
    if not state or evt.index is None or evt.index >= len(state["owners"]):
        return gr.skip()
    face = state["owners"][evt.index]
    return gr.Label(value=state["faces"][face], label=PROBS_TITLE.format(face=face + 1))

