"""fer_demo.live and the Live tab's handler: newest frame wins, one state per visitor, no frame on disk.

The drop policy is checked twice: ``FrameGate``/``LiveSession`` with a slow fake analyzer (frames
arriving while one is analysed are dropped at once, never wait), and Gradio's own stream event on a
real server with a slow handler (frames posted faster than it answers are replaced by newer ones,
not queued). The handler's outputs are checked with the shipped weights on the example photos.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import cv2
import gradio as gr
import numpy as np
import pytest
from PIL import Image
from stream_helpers import StreamClient, stream_dependency

from fer_demo import limits, threads
from fer_demo.frames import FrameFace, FrameResult
from fer_demo.live import (
    SMOOTHING_S,
    SWITCH_MARGIN,
    FrameGate,
    LiveSession,
    LiveSessions,
    fit_frame,
    pick_face,
)
from fer_demo.model import EMOTIONS
from fer_demo.ui import live_tab
from fer_demo.ui.live_tab import (
    LiveHandler,
    plot_svg,
    smoothing_text,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
HAPPY = EMOTIONS.index("happy")


def photo_frame(name: str, size=(640, 480)) -> np.ndarray:
    """An example photo as a webcam frame: resized to ``size``, uint8 RGB."""
    return np.asarray(Image.open(EXAMPLES / name).convert("RGB").resize(size))


class FakeAnalyzer:
    """``FrameAnalyzer``'s interface: one face whose box is the frame's centre; ``delay`` s a frame.

    ``log`` records (t, mean pixel value) of every frame analysed, so tests see which frames ran.
    """

    log: ClassVar[list[tuple[float, float]]] = []
    delay: ClassVar[float] = 0.0
    # (started, release) events: ``process`` sets ``started`` then waits for ``release``; None: no hold.
    hold: ClassVar[tuple[threading.Event, threading.Event] | None] = None

    def __init__(self, predictor, detect_every: int = 1, cam: str | None = None, tracker=None) -> None:
        self.tracker, self.cam, self.classes = tracker, cam, tuple(EMOTIONS)

    def process(self, frame: np.ndarray, t: float, index: int | None = None) -> FrameResult:
        type(self).log.append((t, float(frame.mean())))
        if self.hold is not None:
            started, release = self.hold
            started.set()
            release.wait(120)
        time.sleep(self.delay)
        h, w = frame.shape[:2]
        p = np.full(len(self.classes), 0.1 / (len(self.classes) - 1))
        p[HAPPY] = 0.9
        tracked = self.tracker.update([(w / 4, h / 4, 3 * w / 4, 3 * h / 4)], [p], t)
        faces = [FrameFace(f.track_id, f.box, f.probabilities, f.raw.astype(np.float32), self.classes[f.label],
                           np.full((int(f.box[3] - f.box[1]), int(f.box[2] - f.box[0])), 0.5, np.float32)
                           if self.cam else None) for f in tracked]
        return FrameResult(index=len(type(self).log) - 1, t=t, faces=faces, detected=True, seconds=self.delay,
                           classes=self.classes)


@pytest.fixture
def fake_analyzer():
    FakeAnalyzer.log, FakeAnalyzer.delay, FakeAnalyzer.hold = [], 0.0, None
    yield FakeAnalyzer
    FakeAnalyzer.log, FakeAnalyzer.delay, FakeAnalyzer.hold = [], 0.0, None


def fake_session(**kwargs) -> LiveSession:
    return LiveSession(predictor=None, analyzer_factory=FakeAnalyzer, **kwargs)


def request(session_hash: str) -> SimpleNamespace:
    return SimpleNamespace(session_hash=session_hash)


def decode_frame(html_text: str) -> np.ndarray:
    """The RGB image inside the frame HTML's ``data:`` URI."""
    b64 = re.search(r'src="data:image/jpeg;base64,([^"]+)"', html_text).group(1)
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_COLOR),
                        cv2.COLOR_BGR2RGB)


# --- The drop policy --------------------------------------------------------------------------

def test_gate_admits_one_frame_at_a_time_and_only_newer_ones():
    gate = FrameGate()
    assert gate.enter(1.0)
    assert not gate.enter(1.1)  # busy: dropped, not kept for later
    gate.leave()
    assert not gate.enter(0.9)  # older than the last admitted frame
    assert not gate.enter(1.0)
    assert gate.enter(1.2)
    gate.leave()
    assert (gate.admitted, gate.dropped) == (2, 3)


def test_slow_session_drops_frames_arriving_while_busy_and_keeps_no_backlog(fake_analyzer):
    """While one frame is being analysed (held here by an event, not a delay: no clock in the test),
    every frame that arrives is answered None at once (a frame that waited for the busy one would
    block until the release, and fails the join below); once free, the session analyses the next
    frame that arrives, never one that came while it was busy: no backlog."""
    started, release = threading.Event(), threading.Event()
    fake_analyzer.hold = (started, release)
    session = fake_session()
    answers: dict[float, object] = {}

    def deliver(t: float) -> None:
        answers[t] = session.process(np.full((48, 64, 3), int(10 * t) % 250, np.uint8), t=t)

    admitted = []
    for k in range(3):
        busy = threading.Thread(target=deliver, args=(float(k),))
        busy.start()
        assert started.wait(60), "the analyzer never started"
        started.clear()
        admitted.append(float(k))
        while_busy = [threading.Thread(target=deliver, args=(k + 0.1 * (j + 1),)) for j in range(5)]
        for th in while_busy:
            th.start()
        for th in while_busy:
            th.join(60)  # generous: only a frame waiting for the held one is still running
        assert not any(th.is_alive() for th in while_busy), "a frame waited for the busy one"
        assert all(answers[k + 0.1 * (j + 1)] is None for j in range(5))  # dropped, answered at once
        release.set()
        busy.join(60)
        release.clear()
        assert answers[float(k)] is not None
    # The analyzer ran exactly the admitted frames, in order; none of the 15 dropped ones later.
    assert [round(v) for _, v in fake_analyzer.log] == [int(10 * t) % 250 for t in admitted]
    assert (session.gate.admitted, session.gate.dropped) == (3, 15)


def test_at_most_one_frame_is_analysed_and_none_waits_whatever_the_rate(fake_analyzer):
    """Many frames at once (one thread each, as Gradio's request threads): one is analysed at a time,
    every other returns None without being kept (nothing queued behind the busy one)."""
    fake_analyzer.delay = 0.05
    session = fake_session()
    busy, most, lock = 0, 0, threading.Lock()
    process = fake_analyzer.process

    def counting(self, frame, t, index=None):
        nonlocal busy, most
        with lock:
            busy += 1
            most = max(most, busy)
        try:
            return process(self, frame, t, index)
        finally:
            with lock:
                busy -= 1

    fake_analyzer.process = counting
    try:
        results: list = []
        barrier = threading.Barrier(16)

        def deliver(k: int) -> None:
            barrier.wait()
            results.append(session.process(np.full((48, 64, 3), k, np.uint8), t=1.0 + k / 1000))

        threads = [threading.Thread(target=deliver, args=(k,)) for k in range(16)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        fake_analyzer.process = process
    answered = [r for r in results if r is not None]
    assert most == 1
    assert len(answered) == session.gate.admitted == len(fake_analyzer.log) >= 1
    assert session.gate.admitted + session.gate.dropped == 16


def test_the_tab_sends_frames_faster_than_the_floor_and_lets_the_server_set_the_rate():
    """The wiring: the stream posts a frame every ``LIVE_STREAM_EVERY_S`` (faster than the 20 frames/s
    a server should answer, so the page never caps the rate: the newest frame wins), in the live
    group with ``LIVE_CONCURRENCY`` streams at a time, and the page says the real numbers."""
    from fer_demo import limits

    with gr.Blocks() as demo:
        live_tab.build_live_tab(predictor=None)
    streams = [fn for fn in demo.fns.values() if any(t[1] == "stream" for t in fn.targets)]
    assert len(streams) == 1
    stream = streams[0]
    assert stream.stream_every == limits.LIVE_STREAM_EVERY_S < 1 / 20
    assert stream.concurrency_limit == limits.LIVE_CONCURRENCY
    assert stream.concurrency_id == live_tab.LIVE_CONCURRENCY_ID
    assert stream.time_limit == limits.LIVE_TIME_LIMIT_S
    text = live_tab.limits_text()
    assert f"Up to {1 / limits.LIVE_STREAM_EVERY_S:.0f} frames a second" in text
    # The browser is asked for the small capture size (it scales, mirrors and encodes every frame).
    webcam = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "live-webcam")
    video = webcam.webcam_options.constraints["video"]
    assert (video["width"]["ideal"], video["height"]["ideal"]) == limits.LIVE_CAPTURE
    assert f"webcam at {limits.LIVE_CAPTURE[0]}x{limits.LIVE_CAPTURE[1]}" in text


@pytest.fixture
def slow_stream_server():
    """A real Gradio server with a stream event like the Live tab's whose handler takes 0.2 s and
    answers with the frame's value (each test frame is one flat gray level)."""
    seen: list[int] = []

    def slow(image: np.ndarray) -> str:
        seen.append(round(float(image.mean())))
        time.sleep(0.2)
        return str(seen[-1])

    with gr.Blocks() as demo:
        webcam = gr.Image(sources=["webcam"], streaming=True, type="numpy", elem_id="cam")
        out = gr.Textbox()
        webcam.stream(slow, webcam, out, stream_every=0.05, time_limit=30, concurrency_limit=1)
    demo.queue().launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=None)
    try:
        yield demo.local_url, seen
    finally:
        demo.close()


def test_gradio_stream_hands_the_handler_the_newest_frame_not_a_backlog(slow_stream_server):
    """What the app relies on: frames posted every ~30 ms to a 0.2 s handler for ~2 s. Gradio replaces
    the waiting frame with each newer one, so the handler runs ~10 times, each time on the newest
    frame, and once the camera stops the last frame sent is the last one answered."""
    url, seen = slow_stream_server
    client = StreamClient(url, stream_dependency(url, "cam"))
    levels = [4 * i for i in range(60)]  # 0, 4, ..., 236: JPEG keeps a flat gray within +-1
    client.start(np.full((48, 64, 3), levels[0], np.uint8))
    for level in levels[1:]:
        time.sleep(0.03)
        client.send(np.full((48, 64, 3), level, np.uint8))
    deadline = time.monotonic() + 60  # a wait, not a bound: the loop ends as soon as it is answered
    while (not seen or seen[-1] != levels[-1]) and time.monotonic() < deadline:
        time.sleep(0.05)
    client.wait_for(len(seen))
    client.close()
    assert seen[-1] == levels[-1], seen  # the newest frame wins
    assert seen == sorted(seen)
    assert len(seen) < len(levels) / 2, seen  # most frames were replaced, not queued
    # Every answer is the handler's own, in order: none is repeated or answered from a queue. (No
    # wall-clock bound here: speed on a shared machine belongs in benchmarks/live.py.)
    answers = client.answers()
    assert [int(a[1][0]) for a in answers] == seen


def test_pick_face_follows_the_asked_face_else_the_largest():
    small = FrameFace(1, (0, 0, 10, 10), np.ones(7) / 7, np.ones(7) / 7, "happy")
    large = FrameFace(2, (0, 0, 50, 50), np.ones(7) / 7, np.ones(7) / 7, "sad")
    assert pick_face([small, large]) is large
    assert pick_face([small, large], 1) is small
    assert pick_face([small, large], 7) is large  # not in view: the largest
    assert pick_face([]) is None


@pytest.mark.skipif(not threads.available(), reason="torch runs without an OpenMP runtime here")
def test_a_frame_is_analysed_on_the_live_threads(fake_analyzer, monkeypatch):
    """The analysis runs with ``LiveSession.threads`` in the calling thread (limits.LIVE_THREADS by
    default); the caller's own count is back afterwards."""
    seen = []
    process = FakeAnalyzer.process

    def recording(self, frame, t, index=None):
        seen.append(threads.current())
        return process(self, frame, t, index)

    monkeypatch.setattr(FakeAnalyzer, "process", recording)
    before = threads.current()
    assert fake_session().threads == limits.LIVE_THREADS
    fake_session(threads=1).process(photo_frame("astronaut.jpg", (64, 48)), t=0.0)
    fake_session(threads=None).process(photo_frame("astronaut.jpg", (64, 48)), t=0.0)
    assert seen == [1, before] and threads.current() == before
    with pytest.raises(ValueError, match="threads=0"):
        fake_session(threads=0)


def test_fit_frame_scales_down_only():
    assert fit_frame(np.zeros((480, 640, 3), np.uint8), 640).shape == (480, 640, 3)
    assert fit_frame(np.zeros((1080, 1920, 3), np.uint8), 640).shape == (360, 640, 3)


# --- Per-visitor state ------------------------------------------------------------------------

def test_each_visitor_has_own_tracker_and_is_freed_on_unload(fake_analyzer):
    handler = LiveHandler(predictor=None, sessions=LiveSessions(fake_session))
    frame = np.full((240, 320, 3), 100, np.uint8)
    for _ in range(3):
        handler(frame, False, 0, request("alice"))
    html_bob = handler(frame, False, 0, request("bob"))[1]
    a, b = handler.sessions.get("alice"), handler.sessions.get("bob")
    assert a is not b and a.tracker is not b.tracker
    assert a.gate.admitted == 3 and b.gate.admitted == 1
    assert 'data-face="1"' in html_bob  # bob's first face is face 1, whatever alice saw
    handler.forget_session(request("alice"))
    assert "alice" not in handler.sessions and "bob" in handler.sessions


def test_idle_sessions_are_dropped():
    now = [0.0]
    sessions = LiveSessions(lambda: fake_session(clock=lambda: now[0]), idle_s=10, clock=lambda: now[0])
    sessions.get("gone")
    now[0] = 11.0
    sessions.get("new")
    assert "gone" not in sessions and len(sessions) == 1


def test_a_pause_starts_a_new_stream(fake_analyzer):
    session = fake_session(reset_after_s=2.0)
    frame = np.full((240, 320, 3), 100, np.uint8)
    first = session.process(frame, t=10.0)
    session.process(frame, t=10.5)
    again = session.process(frame, t=13.0)  # 2.5 s later: a new stream
    assert first.followed.track_id == again.followed.track_id == 1
    assert again.elapsed == 0 and len(again.history) == 1


def test_cam_switch_keeps_the_track(fake_analyzer):
    session = fake_session()
    frame = np.full((240, 320, 3), 100, np.uint8)
    plain = session.process(frame, show_cam=False, t=1.0)
    cam = session.process(frame, show_cam=True, t=1.1)
    assert plain.followed.track_id == cam.followed.track_id
    assert cam.followed.heatmap is not None and len(cam.history) == 2
    assert not np.array_equal(plain.image, cam.image)  # the heatmap is drawn


def test_a_frame_that_is_not_rgb_is_said_and_the_stream_goes_on(fake_analyzer):
    handler = LiveHandler(predictor=None, sessions=LiveSessions(fake_session))
    *_, status = handler(np.zeros((20, 20), np.uint8), False, 0, request("x"))
    assert "could not be analysed" in status
    assert handler(None, False, 0, request("x")) == (gr.skip(),) * 3  # no frame: nothing changes


# --- The outputs, on the shipped weights ------------------------------------------------------

@pytest.fixture(scope="module")
def predictor(release_weights):
    from fer_demo.pipeline import Predictor

    return Predictor(weights_path=release_weights)


@pytest.mark.integration
@pytest.mark.parametrize("show_cam", [False, True])
def test_a_smiling_face_is_boxed_labelled_happy_with_bars_and_plot(predictor, show_cam):
    # Frames 0.1 s apart in stream time however slow this machine is today (a 1 s gap would end the track).
    ticks = iter(np.arange(0, 10, 0.1))
    handler = LiveHandler(predictor, LiveSessions(lambda: LiveSession(predictor, clock=lambda: float(next(ticks)))))
    frame = photo_frame("astronaut.jpg")
    outputs = [handler(frame, show_cam, 0, request("visitor")) for _ in range(4)]
    frame_out, face_out, status = outputs[-1]
    assert 'data-faces="1"' in frame_out and "face 1: happy" in frame_out  # the alt text names every tag
    shown = decode_frame(frame_out)
    assert shown.shape == (480, 640, 3)
    assert np.abs(shown.astype(int) - frame.astype(int)).mean() > 0.5  # the box and tag are drawn on it
    assert 'data-face="1"' in face_out and "happy" in face_out
    assert all(e in face_out for e in EMOTIONS)  # every bar
    assert face_out.count("<polyline") == len(EMOTIONS)  # the plot: one line per expression, 4 points each
    assert "1 face in view" in status and "frames/s" in status
    assert len(handler.sessions.get("visitor").tracker.history(1)) == 4


@pytest.mark.skipif(not threads.available(), reason="torch runs without an OpenMP runtime here")
@pytest.mark.parametrize("show_cam", [False, True])
def test_the_live_threads_win_over_the_detectors_and_the_networks_own(predictor, monkeypatch, show_cam):
    """``LiveSession(threads=1)`` runs MTCNN and the classifier (and its CAM) on one thread even where
    their own setting (an explicit ``limits.ANALYSIS_THREADS``, here 2) says otherwise; outside a
    session they run on their own setting."""
    monkeypatch.setattr(predictor.detector, "threads", 2)
    monkeypatch.setattr(predictor.classifier.fast, "threads", 2)
    seen: dict[str, list[int | None]] = {"detector": [], "network": []}

    def record(part):
        return lambda module, args: seen[part].append(threads.current())

    hooks = [predictor.detector._mtcnn.pnet.register_forward_pre_hook(record("detector")),
             predictor.classifier.fast.head_net.register_forward_pre_hook(record("network"))]
    try:
        frame = photo_frame("astronaut.jpg")
        LiveSession(predictor, threads=1, clock=lambda: 0.0).process(frame, show_cam=show_cam, t=0.0)
        assert seen["detector"] and set(seen["detector"]) == {1}
        assert seen["network"] and set(seen["network"]) == {1}
        for part in seen.values():
            part.clear()
        predictor.analyze(frame, cam="hirescam" if show_cam else None)
        assert seen["detector"] and set(seen["detector"]) == {2}
        assert seen["network"] and set(seen["network"]) == {2}
    finally:
        for hook in hooks:
            hook.remove()


@pytest.mark.integration
def test_a_frame_without_a_face_says_so(predictor):
    handler = LiveHandler(predictor)
    frame_out, face_out, status = handler(photo_frame("no_face_cat.jpg"), True, 0, request("cat"))
    assert 'data-faces="0"' in frame_out and live_tab.NO_FACE_TEXT in frame_out
    assert live_tab.NO_FACE_TEXT in face_out
    assert "0 faces in view" in status
    assert decode_frame(frame_out).shape == (480, 640, 3)


def test_plot_and_text_use_the_real_smoothing():
    text = smoothing_text()
    assert f"{SMOOTHING_S:g} s" in text and f"{SWITCH_MARGIN * 100:.0f} points" in text
    p = np.full(7, 1 / 7)
    svg = plot_svg([(0.0, p), (5.0, p), (20.0, p)], now=20.0, classes=tuple(EMOTIONS))
    assert svg.count("<polyline") == 0  # only one point in the last 10 s: nothing to draw yet
    svg = plot_svg([(15.0, p), (20.0, p)], now=20.0, classes=tuple(EMOTIONS))
    assert svg.count("<polyline") == 7


# --- Privacy: no frame on disk ------------------------------------------------------------------

def image_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` that starts like a JPEG, PNG or WebP."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            head = path.read_bytes()[:12]
            if head.startswith((b"\xff\xd8", b"\x89PNG")) or head[8:12] == b"WEBP":
                found.append(path)
    return found


@pytest.mark.integration
@pytest.mark.slow
def test_streamed_frames_are_never_written_to_disk(predictor, tmp_path, monkeypatch):
    """The Live tab on a real server, frames streamed as the browser sends them: Gradio's cache and
    the temp folder (both redirected to empty folders) hold no image afterwards, while the answers
    came back (labelled, with the image inline)."""
    cache, temp = tmp_path / "gradio-cache", tmp_path / "tmp"
    cache.mkdir()
    temp.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    monkeypatch.setattr("tempfile.tempdir", str(temp))
    with gr.Blocks() as demo:
        live = live_tab.build_live_tab(predictor)
        demo.unload(live.forget_session)
    demo.queue().launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=None)
    try:
        client = StreamClient(demo.local_url, stream_dependency(demo.local_url, "live-webcam"), [False, 0])
        frame = photo_frame("astronaut.jpg")
        client.start(frame)
        for _ in range(5):
            client.wait_for(len(client.answers()) + 1, timeout=60)
            client.send(frame)
        client.wait_for(4, timeout=60)
        client.close()
    finally:
        demo.close()
    answers = client.answers()
    assert len(answers) >= 4, client.messages
    frame_out = answers[-1][1][0]
    assert "face 1: happy" in frame_out and "data:image/jpeg;base64," in frame_out
    assert image_files(cache) == [] and image_files(temp) == []
    assert len(live.sessions) == 1  # the stream's state is held until the page goes (its unload)
