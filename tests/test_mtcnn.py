"""fer_demo.mtcnn: facenet-pytorch's detect_face, resampled from one summed-area table, gives its answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from facenet_pytorch import MTCNN
from facenet_pytorch.models.utils.detect_face import detect_face as facenet_detect_face
from PIL import Image, ImageOps
from torch.nn.functional import interpolate

from example_photos import EXAMPLES, FACE_COUNTS
from fer_demo import mtcnn
from fer_demo.detect import FaceDetector
from fer_demo.io import load_image


def as_planes(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float()


def random_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_area_bins_are_adaptive_pooling_bins():
    start, end = mtcnn.area_bins(10, 4)
    assert start.tolist() == [0, 2, 5, 7] and end.tolist() == [3, 5, 8, 10]
    start, end = mtcnn.area_bins(np.array([3, 48]), 24)  # upsampling and an exact halving
    assert start.shape == end.shape == (2, 24)
    assert start[0].tolist() == [i * 3 // 24 for i in range(24)]
    assert (end[1] - start[1] == 2).all()


@pytest.mark.parametrize("size", [(145, 193), (24, 24), (7, 300), (600, 500), (3, 4)])
def test_resize_is_area_interpolation_bit_for_bit(size):
    rng = np.random.default_rng(sum(size))
    image = random_image(rng, 480, 640)
    ours = mtcnn.AreaResampler(image).resize(*size)
    ref = interpolate(as_planes(image), size=size, mode="area")
    assert ours.shape == ref.shape and ours.dtype == torch.float32
    assert torch.equal(ours, ref)


@pytest.mark.parametrize("out", [24, 48])
def test_crops_are_area_interpolation_of_each_crop_bit_for_bit(out):
    rng = np.random.default_rng(out)
    image = random_image(rng, 300, 410)
    y0 = rng.integers(0, 250, 40)
    x0 = rng.integers(0, 350, 40)
    y1 = y0 + rng.integers(1, 300 - y0 + 1)
    x1 = x0 + rng.integers(1, 410 - x0 + 1)
    ours = mtcnn.AreaResampler(image).crops(y0, y1, x0, x1, out)
    planes = as_planes(image)
    ref = torch.cat([interpolate(planes[:, :, a:b, c:d], size=(out, out), mode="area")
                     for a, b, c, d in zip(y0, y1, x0, x1)])
    assert ours.shape == (40, 3, out, out)
    assert torch.equal(ours, ref)


def test_rejects_non_rgb_arrays():
    with pytest.raises(ValueError, match="uint8"):
        mtcnn.AreaResampler(np.zeros((10, 10), np.uint8))


@pytest.fixture(scope="module")
def nets() -> MTCNN:
    """facenet-pytorch's networks as ``FaceDetector`` runs them (channels-last)."""
    return FaceDetector()._mtcnn


def planar(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) view of contiguous (3, H, W) planes: facenet-pytorch then resamples channels-first
    tensors, as ``AreaResampler`` is checked against above (on a channels-last tensor PyTorch's area
    resampling may round the last bit differently)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).permute(1, 2, 0)


def images() -> list[tuple[str, np.ndarray]]:
    out = []
    for name in sorted(FACE_COUNTS):
        photo = load_image(EXAMPLES / name)
        out.append((name, np.asarray(photo)))
        out.append((f"{name} 256x256", np.asarray(ImageOps.fit(photo, (256, 256), Image.BICUBIC))))
    return out


@pytest.mark.parametrize("name, image", images(), ids=lambda v: v if isinstance(v, str) else "")
def test_same_detections_as_facenet_pytorch(nets, name, image):
    minsize = max(20, min(image.shape[:2]) // 12)
    with torch.inference_mode():
        boxes, points = mtcnn.detect_face(image, minsize, nets.pnet, nets.rnet, nets.onet, nets.thresholds)
        ref_boxes, ref_points = facenet_detect_face(planar(image), minsize, nets.pnet, nets.rnet, nets.onet,
                                                    nets.thresholds, nets.factor, "cpu")
    ref_boxes = np.asarray(ref_boxes[0], dtype=np.float32).reshape(-1, 5)
    ref_points = np.asarray(ref_points[0], dtype=np.float32).reshape(-1, 5, 2)
    assert boxes.dtype == points.dtype == np.float32
    assert boxes.shape == ref_boxes.shape and points.shape == ref_points.shape
    # the same pixels into the same networks: the same numbers
    np.testing.assert_array_equal(boxes, ref_boxes)
    np.testing.assert_array_equal(points, ref_points)
    if "cat" not in name and "256" not in name:
        assert (boxes[:, 4] >= 0.9).sum() == FACE_COUNTS[name]


def test_nothing_found_and_too_small(nets):
    flat = np.full((120, 160, 3), 128, np.uint8)
    with torch.inference_mode():
        boxes, points = mtcnn.detect_face(flat, 20, nets.pnet, nets.rnet, nets.onet, nets.thresholds)
        assert boxes.shape == (0, 5) and points.shape == (0, 5, 2)
        boxes, points = mtcnn.detect_face(flat[:15], 20, nets.pnet, nets.rnet, nets.onet, nets.thresholds)
        assert boxes.shape == (0, 5) and points.shape == (0, 5, 2)
