"""fer_demo.detect.FaceDetector: MTCNN on a bounded copy, results in original pixels."""

from __future__ import annotations


import numpy as np
import pytest
from PIL import Image, ImageOps

from fer_demo import limits, mtcnn, threads
from fer_demo.detect import MTCNN_MIN_FACE_PX, Face, FaceDetector
from fer_demo.io import load_image
from example_photos import EXAMPLES, FACE_COUNTS



@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    return {name: load_image(EXAMPLES / name) for name in FACE_COUNTS}


def check_face(face: Face, width: int, height: int) -> None:
    x1, y1, x2, y2 = face.box
    assert all(isinstance(v, float) for v in face.box)
    assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
    assert face.landmarks.dtype == np.float32 and face.landmarks.shape == (5, 2)
    # Landmarks of a frontal face lie inside its box; the eyes above the mouth, left of right.
    lx, ly = face.landmarks[:, 0], face.landmarks[:, 1]
    assert ((lx >= x1) & (lx <= x2) & (ly >= y1) & (ly <= y2)).all()
    left_eye, right_eye, _, mouth_left, mouth_right = face.landmarks
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < min(mouth_left[1], mouth_right[1])
    assert 0.9 <= face.score <= 1.0


@pytest.mark.parametrize("name", sorted(FACE_COUNTS))
def test_face_counts_on_examples(detector, photos, name):
    image = photos[name]
    faces = detector.detect(image)
    assert isinstance(faces, list)
    assert len(faces) == FACE_COUNTS[name]
    for face in faces:
        check_face(face, *image.size)
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)


def test_no_face_is_an_empty_list(detector, photos):
    assert detector.detect(photos["no_face_cat.jpg"]) == []
    assert detector.detect(Image.new("RGB", (200, 150), (90, 120, 200))) == []


def test_exif_rotated_example_finds_the_same_face(detector, photos):
    [rotated] = detector.detect(photos["grace_hopper_exif_rotated.jpg"])
    [upright] = detector.detect(photos["grace_hopper.jpg"])
    np.testing.assert_allclose(rotated.box, upright.box, atol=4)


def test_mirrored_image_gives_mirrored_boxes(detector, photos):
    image = photos["group_three_faces.jpg"]
    width = image.size[0]
    faces = detector.detect(image)
    mirrored = detector.detect(ImageOps.mirror(image))
    assert len(mirrored) == len(faces) == 3
    for face in mirrored:
        check_face(face, *image.size)  # includes: "left eye" is the image-left one
    expect = sorted((width - f.box[2], f.box[1], width - f.box[0], f.box[3]) for f in faces)
    got = sorted(f.box for f in mirrored)
    # MTCNN is not exactly mirror-equivariant: on the contrast-stretched detection copy the middle face's
    # box (~130 px) differs by up to 9 px between the photo and its mirror image (8%; 6 px without it).
    np.testing.assert_allclose(got, expect, atol=10)


def test_boxes_map_back_from_the_detection_copy(photos):
    """A photo larger than max_side is detected on a copy; boxes come back in its own pixels."""
    image = photos["astronaut.jpg"]  # 512 px
    small = FaceDetector(max_side=256)
    [native] = FaceDetector(max_side=1024).detect(image)
    [scaled] = small.detect(image)
    assert small.detection_size(*image.size) == (256, 256, 0.5)
    np.testing.assert_allclose(scaled.box, native.box, atol=8)
    np.testing.assert_allclose(scaled.landmarks, native.landmarks, atol=5)
    big = image.resize((1536, 1536), Image.BILINEAR)  # 3x: detected on a 640 px copy
    [face] = FaceDetector().detect(big)
    np.testing.assert_allclose(face.box, np.array(native.box) * 3, atol=15)
    np.testing.assert_allclose(face.landmarks, (native.landmarks + 0.5) * 3 - 0.5, atol=9)


def test_detection_size_and_min_face():
    det = FaceDetector(max_side=640, min_face_frac=1 / 12)
    assert det.detection_size(640, 480) == (640, 480, 1.0)
    w, h, s = det.detection_size(1920, 1080)
    assert (w, h) == (640, 360) and s == pytest.approx(1 / 3)
    assert det.min_face_px(640, 480) == 40
    assert det.min_face_px(640, 360) == 30
    assert det.min_face_px(100, 80) == MTCNN_MIN_FACE_PX  # never below MTCNN's floor
    assert FaceDetector().max_side == limits.DETECT_MAX_SIDE
    # A panorama strip is not shrunk below 40 px on its shorter side (its faces would vanish).
    assert det.detection_size(6000, 100) == (2400, 40, 0.4)
    assert det.detection_size(4000, 24) == (4000, 24, 1.0)


@pytest.mark.parametrize("size", [(4000, 24), (24, 4000), (20, 20), (6000, 100)])
def test_strips_and_slivers_are_searched_without_error(detector, size):
    """MTCNN itself fails (torch.cat of nothing) when no face of its smallest size fits."""
    assert detector.detect(Image.new("RGB", size, (128, 128, 128))) == []


def test_face_in_a_panorama_strip_is_found(detector, photos):
    face = photos["astronaut.jpg"].crop((130, 0, 290, 200)).resize((80, 100))
    strip = Image.new("RGB", (6000, 100), (200, 200, 200))
    strip.paste(face, (3000, 0))
    found = detector.detect(strip)
    assert len(found) == 1 and 3000 <= found[0].box[0] < found[0].box[2] <= 3080


def test_min_face_frac_skips_small_faces(photos):
    """The astronaut's face is ~115 px of a 512 px photo (22%): found at 1/12, not when the
    smallest face searched for is 60% of the photo (MTCNN's box regression finds faces down to
    ~2/3 of its min_face_size, so the margin is wide)."""
    image = photos["astronaut.jpg"]
    assert len(FaceDetector(min_face_frac=1 / 12).detect(image)) == 1
    assert FaceDetector(min_face_frac=0.6).detect(image) == []


def test_accepts_rgb_arrays(detector, photos):
    image = photos["astronaut.jpg"]
    [a] = detector.detect(np.asarray(image))
    [b] = detector.detect(image)
    np.testing.assert_allclose(a.box, b.box)


@pytest.mark.parametrize("bad", [Image.new("L", (64, 64)), np.zeros((64, 64), np.uint8), "face.jpg"])
def test_rejects_non_rgb_input(detector, bad):
    with pytest.raises((TypeError, ValueError)):
        detector.detect(bad)


@pytest.mark.parametrize("kwargs", [{"max_side": 10}, {"min_face_frac": 1.5}, {"thresholds": (0.6, 0.7)},
                                    {"min_score": 2.0}, {"threads": 0}])
def test_invalid_settings(kwargs):
    with pytest.raises(ValueError):
        FaceDetector(**kwargs)


@pytest.mark.skipif(not threads.available(), reason="torch runs without an OpenMP runtime here")
def test_mtcnn_runs_on_the_analysis_threads(photos, monkeypatch):
    """MTCNN's networks run with ``threads`` in the calling thread; the caller's count is back after."""
    seen: list[int | None] = []
    run = mtcnn.detect_face

    def recording(*args, **kwargs):
        seen.append(threads.current())
        return run(*args, **kwargs)

    monkeypatch.setattr(mtcnn, "detect_face", recording)
    before = threads.current()
    default = FaceDetector()
    assert default.threads == limits.ANALYSIS_THREADS
    photo = photos[sorted(FACE_COUNTS)[0]]
    FaceDetector(threads=1).detect(photo)
    FaceDetector(threads=None).detect(photo)
    assert seen == [1, before] and threads.current() == before


def stock_mtcnn_detect(detector: FaceDetector, image: Image.Image) -> list[tuple[np.ndarray, float]]:
    """What facenet-pytorch's MTCNN, as it ships (channels-first networks, a PIL image in), finds with the
    detector's settings on its detection copy."""
    import torch
    from facenet_pytorch import MTCNN

    det_w, det_h, scale = detector.detection_size(*image.size)
    small = image if scale == 1.0 else image.resize((det_w, det_h), Image.BILINEAR, reducing_gap=2.0)
    if detector.autocontrast > 0:
        small = ImageOps.autocontrast(small, cutoff=detector.autocontrast)
    mtcnn = MTCNN(keep_all=True, post_process=False, select_largest=False, thresholds=list(detector.thresholds),
                  min_face_size=detector.min_face_px(det_w, det_h)).eval()
    with torch.inference_mode():
        boxes, probs = mtcnn.detect(small)
    if boxes is None:
        return []
    return [(np.asarray(b, dtype=np.float64) * ([image.size[0] / det_w, image.size[1] / det_h] * 2), float(p))
            for b, p in zip(boxes, probs) if p is not None and float(p) >= detector.min_score]


@pytest.mark.parametrize("name", sorted(FACE_COUNTS))
@pytest.mark.parametrize("size", [None, (640, 480), (256, 256)])
def test_same_faces_as_stock_mtcnn(detector, photos, name, size):
    """The speed-ups (channels-last, packed networks; resampling from a summed-area table) find exactly
    what stock MTCNN finds."""
    image = photos[name] if size is None else ImageOps.fit(photos[name], size, Image.BICUBIC)
    ours = sorted(detector.detect(image), key=lambda f: f.box[0])
    stock = sorted(stock_mtcnn_detect(detector, image), key=lambda bp: bp[0][0])
    assert len(ours) == len(stock)
    for face, (box, score) in zip(ours, stock):
        box = np.clip(box, 0, [image.size[0], image.size[1]] * 2)
        np.testing.assert_allclose(face.box, box, atol=0.05)
        assert face.score == pytest.approx(score, abs=1e-4)


@pytest.mark.parametrize("name", ["grace_hopper.jpg", "astronaut.jpg"])
def test_dim_photo_found_thanks_to_the_contrast_stretch(photos, name):
    # A photo taken in dim light (grey levels x0.06): MTCNN alone misses the face, the default
    # detector (contrast-stretched detection copy, limits.DETECT_AUTOCONTRAST_CUTOFF) finds it,
    # with its box in the original photo's pixels, where the bright photo's face is.
    bright = photos[name]
    dim = Image.fromarray(np.rint(np.asarray(bright, dtype=np.float32) * 0.06).astype(np.uint8))
    assert limits.DETECT_AUTOCONTRAST_CUTOFF > 0
    assert FaceDetector(autocontrast=0).detect(dim) == []
    found = FaceDetector().detect(dim)
    assert len(found) == 1
    ref = FaceDetector().detect(bright)[0]
    assert np.allclose(found[0].box, ref.box, atol=0.1 * (ref.box[2] - ref.box[0]))


@pytest.mark.parametrize("cutoff", [-1, 50, 80])
def test_invalid_autocontrast(cutoff):
    with pytest.raises(ValueError, match="autocontrast"):
        FaceDetector(autocontrast=cutoff)
