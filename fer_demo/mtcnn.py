"""MTCNN's three stages on one image, as facenet-pytorch 2.5.3's ``detect_face`` runs them, resampled once.

facenet-pytorch resamples with ``interpolate(mode="area")`` (adaptive average pooling): the whole
photo once per pyramid level for P-Net, then every R-Net and O-Net candidate on its own, one call per
box (~70 boxes on a 640x480 portrait). On two CPU cores those calls cost as much as the three networks.
Here one summed-area table of the photo (``cv2.integral``: exact integer sums) gives
every pyramid level and all the candidates' crops of a stage as gathers: the same bins as PyTorch's
adaptive pooling (start ``floor(i*n/m)``, end ``ceil((i+1)*n/m)``), the same exact integer sums,
divided the same way (``sum / kh / kw`` in float32), so the networks see bit-for-bit the pixels they
see in facenet-pytorch (exact while a bin's sum fits float32's 24 bits, i.e. bins under 65,000 pixels:
MTCNN's bins are a few dozen). Everything else (the scale pyramid, P-Net's box generation, the NMS steps,
box regression, squaring and padding, the thresholds) is facenet-pytorch's own code, called as is.
``tests/test_mtcnn.py`` checks the resampling bit for bit and the detections against facenet-pytorch.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from facenet_pytorch.models.utils.detect_face import (
    batched_nms_numpy,
    bbreg,
    generateBoundingBox,
    pad,
    rerec,
)
from torch import nn
from torchvision.ops.boxes import batched_nms

# facenet-pytorch's pyramid step and its batch limit for R-Net / O-Net.
FACTOR = 0.709
BATCH = 512


def area_bins(n_in: np.ndarray | int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of the ``n_out`` bins adaptive average pooling reads from ``n_in``
    pixels: ``floor(i * n_in / n_out)`` .. ``ceil((i + 1) * n_in / n_out)``. ``n_in`` may be an
    array (one length per crop): the result then has shape (len(n_in), n_out)."""
    n = np.asarray(n_in, dtype=np.int64)[..., None]
    i = np.arange(n_out, dtype=np.int64)
    return (i * n) // n_out, -((-(i + 1) * n) // n_out)


class AreaResampler:
    """``torch.nn.functional.interpolate(mode="area")`` of a uint8 RGB image and of crops of it, from
    one summed-area table. Results are float32 (N, 3, h, w) tensors laid out channels-last.

    Args:
        image: uint8 (H, W, 3).
    """

    def __init__(self, image: np.ndarray) -> None:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        self.height, self.width = image.shape[:2]
        # (H + 1, W + 1, 3): table[y, x] = sum of image[:y, :x], exact integers (int32 while they fit).
        depth = cv2.CV_32S if self.height * self.width * 255 < 2**31 else cv2.CV_64F
        self.table = torch.from_numpy(cv2.integral(np.ascontiguousarray(image), sdepth=depth))

    @staticmethod
    def _mean(total: torch.Tensor, kh: np.ndarray, kw: np.ndarray) -> torch.Tensor:
        """Bin sums (N, h, w, 3) / rows (N, h) / columns (N, w) -> float32 (N, 3, h, w), channels-last.
        PyTorch's adaptive average pooling divides in this order: ``sum / kh / kw``."""
        kh_ = torch.from_numpy(kh.astype(np.float32))[:, :, None, None]
        kw_ = torch.from_numpy(kw.astype(np.float32))[:, None, :, None]
        return (total.float() / kh_ / kw_).permute(0, 3, 1, 2)

    def resize(self, height: int, width: int) -> torch.Tensor:
        """The whole image at ``height`` x ``width``: (1, 3, height, width)."""
        ys, ye = area_bins(self.height, height)
        xs, xe = area_bins(self.width, width)
        rows = self.table.index_select(0, torch.from_numpy(ye)) - self.table.index_select(0, torch.from_numpy(ys))
        total = rows.index_select(1, torch.from_numpy(xe)) - rows.index_select(1, torch.from_numpy(xs))
        return self._mean(total[None], (ye - ys)[None], (xe - xs)[None])

    def crops(self, y0: np.ndarray, y1: np.ndarray, x0: np.ndarray, x1: np.ndarray, size: int) -> torch.Tensor:
        """Crops ``image[y0:y1, x0:x1]`` (one per index, each non-empty and inside the image), each
        resized to ``size`` x ``size``: (K, 3, size, size)."""
        y0, y1, x0, x1 = (np.asarray(v, dtype=np.int64) for v in (y0, y1, x0, x1))
        ys, ye = area_bins(y1 - y0, size)
        xs, xe = area_bins(x1 - x0, size)
        ys, ye, xs, xe = ys + y0[:, None], ye + y0[:, None], xs + x0[:, None], xe + x0[:, None]
        flat = self.table.reshape(-1, 3)
        stride = self.width + 1

        def corner(rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
            index = torch.from_numpy((rows[:, :, None] * stride + cols[:, None, :]).reshape(-1))
            return flat.index_select(0, index)

        total = corner(ye, xe) - corner(ys, xe) - corner(ye, xs) + corner(ys, xs)
        return self._mean(total.reshape(len(y0), size, size, 3), ye - ys, xe - xs)


def normalise(x: torch.Tensor) -> torch.Tensor:
    """MTCNN's input scaling, as facenet-pytorch writes it."""
    return (x - 127.5) * 0.0078125


def run_batched(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``net`` on ``x`` in batches of ``BATCH`` (facenet-pytorch's ``fixed_batch_process``)."""
    out = [net(x[i:i + BATCH]) for i in range(0, len(x), BATCH)]
    return tuple(torch.cat(v, dim=0) for v in zip(*out))


def stage_crops(resampler: AreaResampler, boxes: torch.Tensor, size: int) -> tuple[torch.Tensor, np.ndarray]:
    """Candidates' crops for R-Net / O-Net as facenet-pytorch cuts them (``pad``, then
    ``image[y - 1:ey, x - 1:ex]``), resized and normalised; and which boxes had a non-empty crop."""
    y, ey, x, ex = pad(boxes, resampler.width, resampler.height)
    valid = (ey > y - 1) & (ex > x - 1)
    crops = resampler.crops(y[valid] - 1, ey[valid], x[valid] - 1, ex[valid], size)
    return normalise(crops), valid


def refine(resampler: AreaResampler, net: nn.Module, boxes: torch.Tensor, image_inds: torch.Tensor, size: int,
           threshold: float, score_output: int) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...] | None]:
    """One refinement stage as facenet-pytorch runs it (R-Net: ``size`` 24, O-Net: 48): every candidate's
    ``size`` x ``size`` crop (``stage_crops``; empty crops dropped) through ``net``, and the candidates whose
    face probability (column 1 of output ``score_output``) is above ``threshold`` kept, with it as score.

    Returns:
        (boxes (M, 5): x1, y1, x2, y2 of the kept candidates and their score; their image indices (M,);
        ``net``'s outputs for them, each (M, ...), or None when no candidate was left to run).
    """
    if len(boxes) > 0:
        im_data, valid = stage_crops(resampler, boxes, size)
        keep = torch.from_numpy(valid)
        boxes, image_inds = boxes[keep], image_inds[keep]
    if len(boxes) == 0:
        return boxes, image_inds, None
    out = run_batched(net, im_data)
    score = out[score_output][:, 1]
    ipass = score > threshold
    boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
    return boxes, image_inds[ipass], tuple(o[ipass] for o in out)


def detect_face(image: np.ndarray, minsize: float, pnet: nn.Module, rnet: nn.Module, onet: nn.Module,
                threshold: tuple[float, float, float], factor: float = FACTOR) -> tuple[np.ndarray, np.ndarray]:
    """Faces in one uint8 (H, W, 3) RGB image: facenet-pytorch's ``detect_face`` for a single image.

    Args:
        image: uint8 (H, W, 3) RGB, H and W >= ``minsize``.
        minsize: smallest face searched for (px); pnet, rnet, onet: facenet-pytorch's networks (eval);
        threshold: the three stages' score thresholds; factor: the pyramid's scale step.

    Returns:
        (boxes float32 (N, 5): x1, y1, x2, y2, score; points float32 (N, 5, 2) landmarks (x, y)), in
        facenet-pytorch's order (its final "Min" NMS order). Call under ``torch.inference_mode()``.
    """
    resampler = AreaResampler(image)
    h, w = resampler.height, resampler.width
    m = 12.0 / minsize
    minl = min(h, w) * m
    scales = []
    scale_i = m
    while minl >= 12:
        scales.append(scale_i)
        scale_i = scale_i * factor
        minl = minl * factor

    if not scales:  # no face of minsize fits (facenet-pytorch fails here)
        return np.zeros((0, 5), dtype=np.float32), np.zeros((0, 5, 2), dtype=np.float32)

    # First stage: P-Net on every pyramid level, NMS per level, then across levels.
    boxes, image_inds, scale_picks = [], [], []
    offset = 0
    for scale in scales:
        im_data = normalise(resampler.resize(int(h * scale + 1), int(w * scale + 1)))
        reg, probs = pnet(im_data)
        boxes_scale, image_inds_scale = generateBoundingBox(reg, probs[:, 1], scale, threshold[0])
        boxes.append(boxes_scale)
        image_inds.append(image_inds_scale)
        pick = batched_nms(boxes_scale[:, :4], boxes_scale[:, 4], image_inds_scale, 0.5)
        scale_picks.append(pick + offset)
        offset += boxes_scale.shape[0]
    boxes = torch.cat(boxes, dim=0)
    image_inds = torch.cat(image_inds, dim=0)
    scale_picks = torch.cat(scale_picks, dim=0)
    boxes, image_inds = boxes[scale_picks], image_inds[scale_picks]
    pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes, image_inds = boxes[pick], image_inds[pick]
    regw = boxes[:, 2] - boxes[:, 0]
    regh = boxes[:, 3] - boxes[:, 1]
    qq1 = boxes[:, 0] + boxes[:, 5] * regw
    qq2 = boxes[:, 1] + boxes[:, 6] * regh
    qq3 = boxes[:, 2] + boxes[:, 7] * regw
    qq4 = boxes[:, 3] + boxes[:, 8] * regh
    boxes = torch.stack([qq1, qq2, qq3, qq4, boxes[:, 4]]).permute(1, 0)
    boxes = rerec(boxes)

    # Second stage: R-Net on every candidate's 24x24 crop: scores and box regression.
    boxes, image_inds, out = refine(resampler, rnet, boxes, image_inds, 24, threshold[1], score_output=1)
    if out is not None:
        mv = out[0]
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds, mv = boxes[pick], image_inds[pick], mv[pick]
        boxes = bbreg(boxes, mv)
        boxes = rerec(boxes)

    # Third stage: O-Net on 48x48 crops: scores, box regression, landmarks.
    points = torch.zeros(0, 5, 2)
    boxes, image_inds, out = refine(resampler, onet, boxes, image_inds, 48, threshold[2], score_output=2)
    if out is not None:
        mv, landmarks = out[0], out[1].permute(1, 0)  # landmarks: (10, M), x then y
        w_i = boxes[:, 2] - boxes[:, 0] + 1
        h_i = boxes[:, 3] - boxes[:, 1] + 1
        points_x = w_i.repeat(5, 1) * landmarks[:5, :] + boxes[:, 0].repeat(5, 1) - 1
        points_y = h_i.repeat(5, 1) * landmarks[5:10, :] + boxes[:, 1].repeat(5, 1) - 1
        points = torch.stack((points_x, points_y)).permute(2, 1, 0)
        boxes = bbreg(boxes, mv)
        pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], image_inds, 0.7, "Min")
        boxes, points = boxes[pick], points[pick]
    return boxes.numpy().astype(np.float32, copy=False), points.numpy().astype(np.float32, copy=False)
