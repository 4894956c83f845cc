"""fer_demo.pipeline.Predictor: photo in, typed per-face results out.

The tests marked ``integration`` assert what the shipped model should do on real photos
(a smiling face is "happy", the CAM looks at the face); they need the trained release in
weights/, not the random-init development placeholder.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from fer_demo.align import DISPLAY_SIZE
from fer_demo.detect import Face
from fer_demo.io import InvalidImageError, load_image
from fer_demo.model import EMOTIONS
from fer_demo.pipeline import FaceResult, Prediction, Predictor, annotate, heatmap_to_image
from example_photos import EXAMPLES, FACE_COUNTS

SMILING = "astronaut.jpg"  # Eileen Collins, NASA portrait, smiling broadly


@pytest.fixture(scope="module")
def predictor(release_weights) -> Predictor:
    return Predictor(release_weights)


@pytest.fixture(scope="module")
def results(predictor) -> dict[str, Prediction]:
    return {name: predictor.analyze(EXAMPLES / name, cam="gradcam") for name in FACE_COUNTS}


def check_face_result(face: FaceResult, image: np.ndarray, with_cam: bool) -> None:
    height, width = image.shape[:2]
    x1, y1, x2, y2 = face.box
    assert all(type(v) is int for v in face.box)
    assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
    assert face.landmarks.shape == (5, 2)
    assert 0.9 <= face.detection_score <= 1.0
    assert face.aligned.shape == (48, 48) and face.aligned.dtype == np.uint8
    assert face.aligned_rgb.shape == (DISPLAY_SIZE, DISPLAY_SIZE, 3) and face.aligned_rgb.dtype == np.uint8
    assert list(face.probabilities) == list(EMOTIONS)
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert face.label == max(face.probabilities, key=face.probabilities.get)
    assert face.confidence == pytest.approx(face.probabilities[face.label])
    if with_cam:
        assert face.heatmap.shape == (48, 48) and face.heatmap.dtype == np.float32
        assert 0.0 <= face.heatmap.min() and face.heatmap.max() <= 1.0
        assert face.overlay.shape == face.aligned_rgb.shape and face.overlay.dtype == np.uint8
        assert face.region_overlay.shape == (y2 - y1, x2 - x1, 3) and face.region_overlay.dtype == np.uint8
        assert face.target in EMOTIONS
    else:
        assert face.heatmap is None and face.overlay is None and face.region_overlay is None
        assert face.target is None


@pytest.mark.parametrize("name", sorted(FACE_COUNTS))
def test_examples(results, name):
    pred = results[name]
    assert isinstance(pred, Prediction)
    assert pred.faces_found == len(pred.faces) == FACE_COUNTS[name]
    assert not pred.truncated and pred.notice is None
    assert pred.image.dtype == np.uint8 and pred.image.ndim == 3 and pred.image.shape[2] == 3
    for face in pred.faces:
        check_face_result(face, pred.image, with_cam=True)
        assert face.target == face.label  # default: explain the predicted class
    lefts = [f.box[0] for f in pred.faces]
    assert lefts == sorted(lefts)  # numbered left to right, as people count faces in a photo


def test_to_dict_is_json(results):
    pred = results["group_three_faces.jpg"]
    data = json.loads(json.dumps(pred.to_dict()))
    assert data["faces_found"] == 3 and data["truncated"] is False and data["max_faces"] == pred.max_faces
    face = data["faces"][0]
    assert set(face) >= {"box", "landmarks", "score", "label", "confidence", "probabilities", "target"}
    assert face["box"] == list(pred.faces[0].box)
    assert set(face["probabilities"]) == set(EMOTIONS)


def test_exif_rotated_photo_is_analysed_upright(results):
    rotated = results["grace_hopper_exif_rotated.jpg"]
    upright = results["grace_hopper.jpg"]
    assert rotated.image.shape == upright.image.shape
    np.testing.assert_allclose(rotated.faces[0].box, upright.faces[0].box, atol=4)


def test_no_face(predictor, results):
    assert results["no_face_cat.jpg"].faces == []
    assert predictor.predict(EXAMPLES / "no_face_cat.jpg") == []


def test_predict_is_analyze_faces(predictor, results):
    faces = predictor.predict(EXAMPLES / "astronaut.jpg", cam="gradcam")
    assert len(faces) == 1
    assert faces[0].probabilities == pytest.approx(results["astronaut.jpg"].faces[0].probabilities, abs=1e-6)


def test_the_default_cam_is_the_apps(predictor):
    """``analyze``/``predict`` explain with ``DEFAULT_CAM`` unless told otherwise, as the app, the CLI,
    the live overlay and the video tab do."""
    import inspect

    from fer_demo.explain import DEFAULT_CAM

    for fn in (Predictor.analyze, Predictor.predict):
        assert inspect.signature(fn).parameters["cam"].default == DEFAULT_CAM, fn.__name__
    pred = predictor.analyze(EXAMPLES / SMILING)
    assert pred.cam == DEFAULT_CAM
    explicit = predictor.analyze(EXAMPLES / SMILING, cam=DEFAULT_CAM)
    np.testing.assert_allclose(pred.faces[0].heatmap, explicit.faces[0].heatmap, atol=1e-6)


def test_image_sources(predictor):
    path = EXAMPLES / "astronaut.jpg"
    for src in (str(path), path.read_bytes(), Image.open(path), np.asarray(load_image(path))):
        assert len(predictor.predict(src, cam=None)) == 1


def test_without_cam(predictor, results):
    pred = predictor.analyze(EXAMPLES / "group_three_faces.jpg", cam=None)
    assert len(pred.faces) == 3 and pred.cam is None
    for face, with_cam in zip(pred.faces, results["group_three_faces.jpg"].faces):
        check_face_result(face, pred.image, with_cam=False)
        # The CAM pass's own probabilities equal the classifier's.
        assert face.probabilities == pytest.approx(with_cam.probabilities, abs=1e-5)
    assert len(predictor.predict(EXAMPLES / "astronaut.jpg", cam="none")) == 1


@pytest.mark.parametrize("cam, tta", [(None, "none"), ("gradcam", "none"), ("gradcam", "flip")])
def test_aligned_is_exactly_what_the_network_received(predictor, monkeypatch, cam, tta):
    """``FaceResult.aligned`` is the classifier's input, row for row in face order, on every path (the
    classifier alone, the CAM pass that also gives the probabilities, the classifier then the CAM):
    callers that score faces themselves (benchmarks/weight_mix.py) read it instead of hooking the network."""
    received: dict[str, list[np.ndarray]] = {"predict": [], "explain": []}
    predict, explain = predictor.classifier.predict, predictor.explainer.explain_with_probabilities

    def spy_predict(faces, tta="none"):
        received["predict"].append(np.array(faces))
        return predict(faces, tta)

    def spy_explain(faces, *args, **kwargs):
        received["explain"].append(np.array(faces))
        return explain(faces, *args, **kwargs)

    monkeypatch.setattr(predictor.classifier, "predict", spy_predict)
    monkeypatch.setattr(predictor.explainer, "explain_with_probabilities", spy_explain)
    faces = predictor.predict(EXAMPLES / "group_three_faces.jpg", cam=cam, tta=tta)
    batches = received["predict"] + received["explain"]
    assert len(faces) == 3 and len(batches) == (1 if cam is None or tta == "none" else 2)
    for batch in batches:
        np.testing.assert_array_equal(np.stack([f.aligned for f in faces]), batch)


@pytest.mark.parametrize("tta", ["flip", "tencrop"])
def test_tta(predictor, tta):
    pred = predictor.analyze(EXAMPLES / "group_three_faces.jpg", cam="gradcam++", tta=tta)
    assert len(pred.faces) == 3
    for face in pred.faces:
        check_face_result(face, pred.image, with_cam=True)
        assert face.target == face.label


def test_explicit_target(predictor):
    """"Why (not) happy?": every face's CAM explains the requested class."""
    pred = predictor.analyze(EXAMPLES / "group_three_faces.jpg", cam="gradcam", target="sad")
    assert [f.target for f in pred.faces] == ["sad"] * 3
    for face in pred.faces:
        check_face_result(face, pred.image, with_cam=True)


def test_max_faces_cap(predictor, results, monkeypatch):
    monkeypatch.setattr(predictor, "max_faces", 2)  # as Predictor(max_faces=2), without reloading weights
    pred = predictor.analyze(EXAMPLES / "group_three_faces.jpg", cam=None)
    assert len(pred.faces) == 2 and pred.faces_found == 3 and pred.truncated and pred.max_faces == 2
    assert "3 faces found" in pred.notice and "2" in pred.notice
    data = pred.to_dict()
    assert data["truncated"] is True and data["faces_found"] == 3 and len(data["faces"]) == 2
    # The two kept are the two with the highest detection scores.
    full = sorted((f.detection_score for f in results["group_three_faces.jpg"].faces), reverse=True)
    assert sorted((f.detection_score for f in pred.faces), reverse=True) == pytest.approx(full[:2], abs=1e-6)
    assert pred.faces[0].box[0] < pred.faces[1].box[0]


def test_bad_options_fail_before_any_work(predictor):
    with pytest.raises(ValueError, match="Invalid CAM method"):
        predictor.analyze(EXAMPLES / "astronaut.jpg", cam="scorecam")
    with pytest.raises(ValueError, match="Invalid target 'joy'"):
        predictor.analyze(EXAMPLES / "astronaut.jpg", target="joy")
    with pytest.raises(ValueError, match="Invalid TTA"):
        predictor.analyze(EXAMPLES / "astronaut.jpg", tta="five")
    with pytest.raises(ValueError):
        Predictor(max_faces=0)


def test_bad_image(predictor):
    with pytest.raises(InvalidImageError, match="not an image"):
        predictor.analyze(b"GIF89a but not really")


def test_annotate(results):
    pred = results["group_three_faces.jpg"]
    out = annotate(pred)
    assert isinstance(out, Image.Image) and out.mode == "RGB"
    assert out.size == (pred.image.shape[1], pred.image.shape[0])
    changed = np.abs(np.asarray(out, dtype=int) - pred.image.astype(int)).sum(axis=2) > 0
    for face in pred.faces:
        x1, y1, x2, y2 = face.box
        assert changed[y1:y2, x1].all() and changed[y1, x1:x2].all()  # box drawn
        assert not changed[(y1 + y2) // 2, (x1 + x2) // 2]  # face left visible
    assert not np.array_equal(np.asarray(annotate(pred, show_regions=True)), np.asarray(out))


def test_classification_waits_while_a_cam_hooks_the_model(predictor, results, monkeypatch):
    """While a CAM's hooks sit on the shared model, a classification pass must wait (else the
    hooks would capture its activations). Made deterministic: the CAM pauses while hooked."""
    from fer_demo import explain

    hooked, order = threading.Event(), []

    class PausingGradCAM(explain.GradCAM):
        def __call__(self, *args, **kwargs):
            hooked.set()
            threading.Event().wait(0.5)  # a classification started now must not run yet
            out = super().__call__(*args, **kwargs)
            order.append("cam")
            return out

    monkeypatch.setitem(explain.CAM_METHODS, "gradcam", PausingGradCAM)
    faces = np.stack([f.aligned for f in results["group_three_faces.jpg"].faces])
    expected = predictor.classifier.predict(faces)
    thread = threading.Thread(target=predictor.explainer.explain, args=(faces, [3, 3, 3], "gradcam"))
    thread.start()
    assert hooked.wait(60)
    probs = predictor.classifier.predict(faces)
    order.append("classify")
    thread.join()
    assert order == ["cam", "classify"]
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    assert predictor.explainer.lock is predictor.classifier.lock


def test_concurrent_calls_give_the_sequential_results(predictor, results):
    photo = EXAMPLES / "group_three_faces.jpg"
    jobs = [dict(cam="gradcam"), dict(cam=None), dict(cam="layercam"), dict(cam=None, tta="flip")]
    with ThreadPoolExecutor(max_workers=4) as pool:
        preds = list(pool.map(lambda kw: predictor.analyze(photo, **kw), jobs))
    reference = results["group_three_faces.jpg"]
    for kw, pred in zip(jobs, preds):
        assert len(pred.faces) == 3
        if kw.get("tta", "none") == "none":
            for face, ref in zip(pred.faces, reference.faces):
                assert face.probabilities == pytest.approx(ref.probabilities, abs=1e-5)
    for face, ref in zip(preds[0].faces, reference.faces):
        np.testing.assert_allclose(face.heatmap, ref.heatmap, atol=1e-5)
    for p in predictor.classifier.model.parameters():
        assert p.requires_grad and p.grad is None


def test_heatmap_to_image_round_trip():
    """A hot spot in the 48x48 frame lands where the inverse matrix says in the photo."""
    matrix = np.array([[0.5, 0.0, -10.0], [0.0, 0.5, -20.0]])  # photo px -> frame px
    heat = np.zeros((48, 48), np.float32)
    heat[30, 12] = 1.0
    region = heatmap_to_image(heat, matrix, (10, 30, 130, 150))
    y, x = np.unravel_index(region.argmax(), region.shape)
    fx, fy = cv2.invertAffineTransform(matrix) @ np.array([12, 30, 1.0])
    assert (x + 10, y + 30) == pytest.approx((fx, fy), abs=1.5)


# --- real behaviour of the shipped model: needs the trained release --------------------------

@pytest.mark.integration
def test_smiling_face_is_happy(results):
    [face] = results[SMILING].faces
    assert face.label == "happy", face.probabilities
    assert face.confidence > 0.5


@pytest.mark.integration
def test_smiling_faces_in_the_group_are_happy(results):
    """The group holds the astronaut and her mirror image (and Grace Hopper, not asserted)."""
    faces = results["group_three_faces.jpg"].faces
    astronauts = sorted((f for f in faces if f.box[0] < 300 or f.box[0] > 800), key=lambda f: f.box[0])
    assert len(astronauts) == 2
    assert [f.label for f in astronauts] == ["happy", "happy"]
    # A mirrored face reads the same.
    assert astronauts[0].probabilities["happy"] == pytest.approx(astronauts[1].probabilities["happy"], abs=0.15)


def heat_centre(face: FaceResult) -> np.ndarray:
    """The heatmap's centre of mass, (x, y) in the photo's pixels (mapped back with ``face.matrix``)."""
    v, u = np.mgrid[:face.heatmap.shape[0], :face.heatmap.shape[1]]
    w = face.heatmap / face.heatmap.sum()
    return cv2.invertAffineTransform(face.matrix) @ np.array([(u * w).sum(), (v * w).sum(), 1.0])


@pytest.mark.integration
@pytest.mark.parametrize("name", ["astronaut.jpg", "grace_hopper.jpg", "group_three_faces.jpg"])
def test_heatmap_moves_with_the_face_when_the_photo_is_shifted(predictor, results, name):
    """The same photo pasted 80 px right and 40 px down on a gray canvas: every face's map (same
    target class) stays on the face rather than on a place in the image or in the crop. Given the
    same detections moved by the shift, the map is the same and its centre, mapped back into the
    photo, moves by exactly the shift; detected anew, its centre lies in the moved box. (Issue 22:
    the earlier "peak inside the box" check could only fail on a flat map.)"""
    dx, dy = 80, 40
    image = np.asarray(load_image(EXAMPLES / name))
    shifted = np.full((image.shape[0] + dy, image.shape[1] + dx, 3), 128, np.uint8)
    shifted[dy:, dx:] = image
    originals = sorted(results[name].faces, key=lambda f: f.box[0])
    for face in originals:
        assert face.heatmap.max() > 0, (name, "flat map")
    moved = sorted(predictor.predict(shifted, cam="gradcam", target=originals[0].target), key=lambda f: f.box[0])
    assert len(moved) == len(originals)
    for face, other in zip(originals, moved):
        if other.target != face.target:  # explain the same class in both
            [other] = [f for f in predictor.predict(shifted, cam="gradcam", target=face.target)
                       if abs(f.box[0] - face.box[0] - dx) < 20]
        # The same face detected anew moves a few pixels more or less than the photo (MTCNN's grid and
        # the detection copy's contrast stretch see a different image): the same detections moved by
        # exactly the shift isolate the alignment and the CAM, which must give the same map.
        [same] = predictor.analyze_faces(shifted, [Face(box=tuple(np.add(face.box, (dx, dy, dx, dy))),
                                                        landmarks=face.landmarks + (dx, dy),
                                                        score=face.detection_score)],
                                         cam="gradcam", target=face.target)
        assert np.abs(same.heatmap - face.heatmap).mean() < 0.01, (name, "a different map")
        assert np.allclose(heat_centre(same) - heat_centre(face), (dx, dy), atol=0.5), (name, "moved apart")
        # Detected anew, the map's centre stays on the face: inside the moved box, which the shift
        # (80 px, more than a group face's width) takes off the map's old place. Not to the pixel:
        # a few pixels of detector jitter move the aligned crop, and the 5x5 CAM grid's centre of
        # mass with it, by up to ~10% of a small face's width.
        x1, y1, x2, y2 = other.box
        x, y = heat_centre(other)
        assert x1 <= x <= x2 and y1 <= y <= y2, (name, (x, y), other.box)


@pytest.mark.integration
def test_mirrored_photo_same_label(predictor, results):
    mirrored = ImageOps.mirror(load_image(EXAMPLES / SMILING))
    [face] = predictor.predict(mirrored, cam=None)
    [original] = results[SMILING].faces
    assert face.label == original.label
    assert face.confidence == pytest.approx(original.confidence, abs=0.15)
