"""fer_demo.frames: the per-frame core of video files and the live mode (shipped weights, generated frames)."""

from __future__ import annotations

import numpy as np
import pytest
from video_clips import astronaut_frames

from fer_demo.detect import FaceDetector
from fer_demo.frames import FrameAnalyzer, FrameResult, annotate_frame
from fer_demo.pipeline import Predictor

# EigenCAM: gradient-free, so its map is never all zero (a gradient CAM of a face whose evidence is all
# negative is); the tests here are about the plumbing, not about which method is faithful.
CAM = "eigencam"


class CountingDetector:
    """The real detector, counting its calls."""

    def __init__(self) -> None:
        self.inner = FaceDetector()
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        return self.inner.detect(image)


@pytest.fixture(scope="module")
def counting() -> CountingDetector:
    return CountingDetector()


@pytest.fixture(scope="module")
def predictor(release_weights, counting) -> Predictor:
    return Predictor(release_weights, detector=counting)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return astronaut_frames(12, step=6)  # the face moves 6 px left every frame


def test_a_face_moving_across_frames_keeps_its_id(predictor, frames):
    analyzer = FrameAnalyzer(predictor, detect_every=1)
    results = [analyzer.process(f, t=k / 10) for k, f in enumerate(frames)]
    assert [len(r.faces) for r in results] == [1] * len(frames)
    assert {r.faces[0].track_id for r in results} == {1}
    lefts = [r.faces[0].box[0] for r in results]
    assert lefts[0] - lefts[-1] > 40  # the box followed the face (66 px of pan)
    assert [r.index for r in results] == list(range(len(frames)))
    assert all(r.faces[0].label == "happy" for r in results)


@pytest.mark.parametrize("every", [1, 3, 5])
def test_the_detector_runs_only_every_kth_frame(predictor, counting, frames, every):
    analyzer = FrameAnalyzer(predictor, detect_every=every)
    before = counting.calls
    results = [analyzer.process(f, t=k / 10) for k, f in enumerate(frames[:10])]
    expected = [k % every == 0 for k in range(10)]
    assert [r.detected for r in results] == expected
    assert counting.calls - before == sum(expected)
    # Carried frames re-use the last detection's box, and still classify the new frame.
    for r, prev in zip(results[1:], results):
        if not r.detected:
            assert r.faces[0].box == prev.faces[0].box
    assert not np.array_equal(results[1].faces[0].raw_probabilities, results[0].faces[0].raw_probabilities)


def test_process_many_matches_process_frame_by_frame(predictor, counting, frames):
    """Video files classify a detection interval's frames in one batch: same results, same detections."""
    times = [k / 5 for k in range(len(frames))]
    one = FrameAnalyzer(predictor, detect_every=3)
    singles = [one.process(f, t) for f, t in zip(frames, times)]
    many = FrameAnalyzer(predictor, detect_every=3)
    before = counting.calls
    batched = many.process_many(frames[:5], times[:5]) + many.process_many(frames[5:], times[5:])
    assert counting.calls - before == sum(r.detected for r in singles) == 4
    assert [r.detected for r in batched] == [r.detected for r in singles]
    assert [r.index for r in batched] == list(range(len(frames)))
    for a, b in zip(singles, batched):
        assert [f.track_id for f in a.faces] == [f.track_id for f in b.faces]
        assert a.faces[0].box == b.faces[0].box and a.faces[0].label == b.faces[0].label
        np.testing.assert_allclose(a.faces[0].raw_probabilities, b.faces[0].raw_probabilities, atol=1e-4)
        np.testing.assert_allclose(a.faces[0].probabilities, b.faces[0].probabilities, atol=1e-4)
    with pytest.raises(ValueError, match="2 frames but 1 times"):
        many.process_many(frames[:2], [0.0])


def test_without_faces_the_detector_runs_on_every_frame(predictor, counting):
    analyzer = FrameAnalyzer(predictor, detect_every=5)
    before = counting.calls
    blank = np.full((240, 320, 3), 127, np.uint8)
    results = [analyzer.process(blank, t=k / 10) for k in range(4)]
    assert counting.calls - before == 4 and all(r.detected and r.faces == [] for r in results)
    assert all(r.to_dicts() == [] for r in results)


def test_labels_only_and_with_cam(predictor, frames):
    plain = FrameAnalyzer(predictor, detect_every=2).process(frames[0], 0.0)
    cam = FrameAnalyzer(predictor, detect_every=2, cam=CAM).process(frames[0], 0.0)
    assert plain.faces[0].heatmap is None
    face = cam.faces[0]
    x1, y1, x2, y2 = (int(v) for v in face.box)
    assert face.heatmap is not None and face.heatmap.dtype == np.float32
    assert face.heatmap.shape == (y2 - y1, x2 - x1)
    assert 0 <= face.heatmap.min() and 0 < face.heatmap.max() <= 1
    # One forward pass with the CAM gives the same probabilities as the labels-only pass.
    np.testing.assert_allclose(face.raw_probabilities, plain.faces[0].raw_probabilities, atol=1e-4)
    assert face.probabilities.sum() == pytest.approx(1)


def test_records_and_reset(predictor, frames):
    analyzer = FrameAnalyzer(predictor, detect_every=3)
    first = analyzer.process(frames[0], 0.0, index=7)
    [record] = first.to_dicts()
    assert record["frame"] == 7 and record["time"] == 0.0 and record["face"] == 1
    assert record["label"] == "happy" and list(record["probabilities"]) == list(analyzer.classes)
    assert len(record["box"]) == 4 and sum(record["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert first.faces[0].to_dict()["track_id"] == 1
    analyzer.process(np.full((240, 320, 3), 127, np.uint8), 5.0)  # the face is forgotten after 1 s
    assert analyzer.process(frames[0], 6.5).faces[0].track_id == 2
    analyzer.reset()
    again = analyzer.process(frames[0], 0.0)
    assert again.detected and again.index == 0 and again.faces[0].track_id == 1


def test_annotate_frame(predictor, frames):
    analyzer = FrameAnalyzer(predictor, cam=CAM)
    frame = frames[0]
    original = frame.copy()
    result = analyzer.process(frame, 0.0)
    plain = annotate_frame(frame, result, analyzer.classes)
    tinted = annotate_frame(frame, result, analyzer.classes, show_cam=True)
    np.testing.assert_array_equal(frame, original)  # the input is not drawn on
    for out in (plain, tinted):
        assert out.shape == frame.shape and out.dtype == np.uint8
    x1, y1, x2, y2 = (int(v) for v in result.faces[0].box)
    assert not np.array_equal(plain[y1:y2, x1:x2], frame[y1:y2, x1:x2])  # box and tag drawn
    inner = (slice(y1 + 8, y2 - 8), slice(x1 + 8, x2 - 8))  # inside the box outline
    np.testing.assert_array_equal(plain[inner], frame[inner])
    assert not np.array_equal(tinted[inner], frame[inner])  # the heatmap is drawn in
    np.testing.assert_array_equal(plain[-20:, :20], frame[-20:, :20])  # away from the face: untouched
    empty = FrameResult(index=0, t=0.0, faces=[], detected=True, seconds=0.0)
    np.testing.assert_array_equal(annotate_frame(frame, empty, analyzer.classes), frame)


def test_bad_arguments(predictor):
    with pytest.raises(ValueError, match="detect_every"):
        FrameAnalyzer(predictor, detect_every=0)
    with pytest.raises(ValueError, match="Invalid CAM method"):
        FrameAnalyzer(predictor, cam="scorecam")
    with pytest.raises(ValueError, match="uint8"):
        FrameAnalyzer(predictor).process(np.zeros((10, 10), np.uint8), 0.0)


def test_the_tag_on_a_webcam_frame_is_big_enough_to_read_on_a_phone():
    """Issue 22, defect 10: on a phone (a 640x480 frame shown ~360 px wide) the tag was ~7 px tall.
    Its filled box is now at least 1/16 of the frame's height (it was 22 px of 480): >= 16 CSS px there."""
    from fer_demo.frames import FrameFace
    from fer_demo.model import EMOTIONS

    frame = np.full((480, 640, 3), 255, np.uint8)
    probs = np.full(len(EMOTIONS), 1 / len(EMOTIONS))
    face = FrameFace(1, (200.0, 200.0, 360.0, 400.0), probs, probs.astype(np.float32), EMOTIONS[0])
    drawn = annotate_frame(frame, FrameResult(0, 0.0, [face], True, 0.0, tuple(EMOTIONS)), EMOTIONS)
    column = drawn[:200, 205]  # above the box, through the tag's filled background
    tag_rows = np.flatnonzero((column != 255).any(axis=1))
    assert tag_rows.size >= 480 / 16, tag_rows.size


def test_a_clear_expression_is_judged_on_the_smoothed_probabilities(predictor):
    from types import SimpleNamespace

    from fer_demo.quality import assess

    rng = np.random.default_rng(0)
    face = np.clip(128 + rng.normal(0, 40, (48, 48)), 0, 255).astype(np.uint8)  # sharp, mid-grey
    # This frame alone: a near tie (margin 0.01), so the frame's own verdict is a refusal.
    frame_quality = assess(face, None, None, 1.0, 0.40, 0.01, predictor.quality_thresholds)
    assert not frame_quality.readable
    r = SimpleNamespace(quality=frame_quality, abstained=True)
    analyzer = FrameAnalyzer(predictor)
    clear = np.array([0.7, 0.02, 0.03, 0.1, 0.05, 0.05, 0.05])
    tied = np.array([0.40, 0.02, 0.03, 0.39, 0.06, 0.05, 0.05])
    assert analyzer._verdict(r, clear) == (False, ())
    assert analyzer._verdict(r, tied) == (True, ("no clear expression",))
    # A blurred frame stays refused whatever the smoothed probabilities say.
    blurred = SimpleNamespace(quality=assess(np.full((48, 48), 90, np.uint8), None, None, 1.0, 0.7, 0.6,
                                             predictor.quality_thresholds), abstained=True)
    assert analyzer._verdict(blurred, clear) == (True, ("blurred",))
    # Abstention off: never abstained, the reasons still said.
    off = FrameAnalyzer(Predictor(predictor.classifier.weights_path, detector=predictor.detector, abstain=False))
    assert off._verdict(r, tied) == (False, ("no clear expression",))


def test_each_tracked_face_gets_the_smoothed_verdict(predictor, frames, monkeypatch):
    analyzer = FrameAnalyzer(predictor)
    seen = []

    def verdict(r, smoothed):
        seen.append(np.asarray(smoothed).copy())
        return True, ("from the smoothed probabilities",)

    monkeypatch.setattr(analyzer, "_verdict", verdict)
    face = analyzer.process(frames[0], t=0.0).faces[0]
    assert face.abstained and face.reasons == ("from the smoothed probabilities",)
    assert np.allclose(seen[0], face.probabilities)
