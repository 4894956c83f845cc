"""fer_demo.align: level eyes, FER2013 framing, a matrix that maps the photo to the crop."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from fer_demo import align as A
from fer_demo.align import DISPLAY_SIZE, AlignedFace, align_face, alignment_matrix
from fer_demo.detect import Face, FaceDetector
from fer_demo.io import load_image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def astronaut(detector) -> tuple[Image.Image, Face]:
    image = load_image(EXAMPLES / "astronaut.jpg")
    [face] = detector.detect(image)
    return image, face


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]


def test_shapes_and_dtypes(astronaut):
    image, face = astronaut
    al = align_face(image, face)
    assert isinstance(al, AlignedFace)
    assert al.gray.shape == (48, 48) and al.gray.dtype == np.uint8
    assert al.rgb.shape == (DISPLAY_SIZE, DISPLAY_SIZE, 3) and al.rgb.dtype == np.uint8
    assert al.matrix.shape == (2, 3) and al.matrix.dtype == np.float64
    assert al.gray.std() > 20  # a face, not a flat patch
    assert align_face(image, face, display_size=96).rgb.shape == (96, 96, 3)
    with pytest.raises(ValueError, match="multiple of 48"):
        align_face(image, face, display_size=100)


def test_gray_is_the_luma_of_the_colour_crop(astronaut):
    image, face = astronaut
    al = align_face(image, face)
    luma = cv2.cvtColor(al.rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)  # BT.601 weights
    expected = cv2.resize(luma, (48, 48), interpolation=cv2.INTER_AREA)
    assert np.abs(al.gray.astype(np.float32) - expected).max() <= 1.0


@pytest.mark.parametrize("angle", [0, 15, -25])
def test_matrix_maps_the_eyes_to_the_template(detector, astronaut, angle):
    image, _ = astronaut
    rotated = image.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=(128, 128, 128))
    [face] = detector.detect(rotated)
    al = align_face(rotated, face)
    left, right = apply(al.matrix, face.landmarks[:2])
    assert abs(left[1] - right[1]) < 1e-6  # eyes exactly level
    assert left[0] < right[0]  # and not upside down
    centre, eye_dist = A.template_points(48)
    np.testing.assert_allclose((left + right) / 2, centre, atol=1e-6)
    assert right[0] - left[0] <= eye_dist + 1e-6  # the eye distance sets the side, or something larger did
    mouth = apply(al.matrix, face.landmarks[3:]).mean(axis=0)
    assert abs(mouth[0] - centre[0]) < 4  # mouth below the eye midpoint
    assert mouth[1] == pytest.approx(0.79 * 48, abs=5)  # at FER2013's median mouth height


@pytest.mark.parametrize("angle", [0, 20])
def test_eyes_are_level_in_the_aligned_crop(detector, astronaut, angle):
    """Independent check: detect the face again in the aligned colour crop."""
    image, _ = astronaut
    rotated = image.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=(128, 128, 128))
    [face] = detector.detect(rotated)
    al = align_face(rotated, face)
    pad = DISPLAY_SIZE // 2  # MTCNN needs some context around a face that fills the frame
    padded = ImageOps.expand(Image.fromarray(al.rgb), pad, fill=(128, 128, 128))
    [again] = FaceDetector(min_face_frac=0.1).detect(padded)
    k = DISPLAY_SIZE / 48
    eyes48 = (again.landmarks[:2] - pad + 0.5) / k - 0.5  # display px -> 48 px
    assert abs(eyes48[0, 1] - eyes48[1, 1]) < 1.0
    centre, _ = A.template_points(48)
    np.testing.assert_allclose(eyes48.mean(axis=0), centre, atol=1.5)


def test_eye_order_does_not_matter(astronaut):
    _, face = astronaut
    swapped = face.landmarks[[1, 0, 2, 4, 3]]
    np.testing.assert_allclose(alignment_matrix(swapped), alignment_matrix(face.landmarks), atol=1e-9)


def test_scale_uses_the_larger_face_size_estimate():
    eyes_mid = np.array([100.0, 100.0])
    lm = np.array([[80, 100], [120, 100], [100, 115], [88, 130], [112, 130]], dtype=np.float64)  # eye dist 40
    m = alignment_matrix(lm)
    assert m[0, 0] == pytest.approx(48 / max(40 / A.EYE_DIST, 30 / A.EYE_MOUTH_DIST))
    # Turned head: eyes closer together; the eye-mouth distance keeps the scale.
    narrow = lm.copy()
    narrow[:2, 0] = [90, 110]
    assert np.hypot(*alignment_matrix(narrow)[0, :2]) == pytest.approx(48 / (30 / A.EYE_MOUTH_DIST))
    np.testing.assert_allclose(apply(m, eyes_mid[None])[0], A.template_points(48)[0])


def test_rejects_degenerate_landmarks():
    with pytest.raises(ValueError, match="coincide"):
        alignment_matrix(np.array([[5, 5], [5, 5], [5, 9], [3, 12], [7, 12]], dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        alignment_matrix(np.zeros((4, 2)))


def test_mirrored_face_gives_the_mirrored_crop(detector, astronaut):
    image, face = astronaut
    width = image.size[0]
    mirrored = ImageOps.mirror(image)
    a = align_face(image, face).gray.astype(int)
    # Exactly mirrored landmarks (x -> width - 1 - x, left/right swapped): exactly mirrored crop.
    lm = face.landmarks[[1, 0, 2, 4, 3]].copy()
    lm[:, 0] = width - 1 - lm[:, 0]
    exact = align_face(mirrored, Face(box=face.box, landmarks=lm, score=face.score)).gray.astype(int)
    assert np.abs(a[:, ::-1] - exact).max() <= 1
    # Landmarks MTCNN finds on the mirrored photo differ by a pixel or two; still the mirror image.
    [mface] = detector.detect(mirrored)
    b = align_face(mirrored, mface).gray.astype(int)
    assert np.abs(a[:, ::-1] - b).mean() < 0.4 * np.abs(a - b).mean()


def test_large_face_is_low_pass_filtered_not_aliased(astronaut):
    """A 4x larger photo gives (nearly) the same 48x48 face: the warp area-averages first."""
    image, face = astronaut
    big = image.resize((2048, 2048), Image.BICUBIC)
    big_face = Face(box=tuple(v * 4 for v in face.box), landmarks=(face.landmarks + 0.5) * 4 - 0.5, score=face.score)
    a = align_face(image, face)
    b = align_face(big, big_face)
    np.testing.assert_allclose(b.matrix[:, :2] * 4, a.matrix[:, :2], rtol=1e-6)
    assert np.abs(a.gray.astype(int) - b.gray.astype(int)).mean() < 4


def test_face_at_the_border_is_padded_by_edge_pixels():
    image = np.full((120, 160, 3), 200, dtype=np.uint8)
    lm = np.array([[2, 10], [30, 10], [16, 25], [6, 36], [26, 36]], dtype=np.float32)  # top-left corner
    al = align_face(image, Face(box=(0.0, 0.0, 32.0, 40.0), landmarks=lm, score=0.99))
    assert al.gray.shape == (48, 48)
    assert (al.gray == 200).all()  # replicated border: no black frame


def test_heatmap_maps_back_with_the_inverse(astronaut):
    """A point of the 48x48 frame goes back to the photo through the inverse matrix."""
    image, face = astronaut
    al = align_face(image, face)
    inv = cv2.invertAffineTransform(al.matrix)
    nose48 = apply(al.matrix, face.landmarks[2:3])
    np.testing.assert_allclose(apply(inv, nose48), face.landmarks[2:3], atol=1e-4)
