"""Step functions: one training epoch, batched prediction and evaluation."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from fer_demo.transforms import TrainAugment, tta_views
from train.data import FaceDataset
from train.metrics import classification_metrics


def bf16_supported() -> bool:
    """True when this CPU has native bf16 matrix math (AVX-512 BF16 / AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"Invalid precision {precision!r}. Only 'auto', 'fp32' and 'bf16' are supported.")
    if device.type == "cuda":
        return "fp32" if precision == "fp32" else "fp16-amp"
    if precision == "auto":
        return "bf16" if bf16_supported() else "fp32"
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "fp16-amp":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


@dataclass
class EpochStats:
    loss: float
    accuracy: float
    images_per_s: float
    seconds: float


def train_one_epoch(model: nn.Module, data: FaceDataset, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, criterion: nn.Module,
                    augment: TrainAugment, generator: torch.Generator, batch_size: int,
                    device: torch.device, precision: str, channels_last: bool,
                    scaler: torch.amp.GradScaler | None = None, grad_clip: float = 0.0, desc: str = "train",
                    progress: bool = True) -> EpochStats:
    """One pass over ``data`` in a random order drawn from ``generator`` (drops the last
    partial batch so BatchNorm never sees a batch of 1)."""
    model.train()
    n = len(data)
    order = torch.randperm(n, generator=generator)
    steps = n // batch_size
    total_loss, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=desc, unit="batch", disable=not progress, dynamic_ncols=True)
    for step in bar:
        idx = order[step * batch_size : (step + 1) * batch_size]
        x = augment(data.images[idx], generator)
        y = data.labels[idx]
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            logits = model(x)
            loss = criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
        scheduler.step()
        total_loss += loss.item() * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        elapsed = time.perf_counter() - start
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}",
                        img_s=f"{seen / elapsed:.0f}", lr=f"{scheduler.get_last_lr()[0]:.4f}")
    elapsed = time.perf_counter() - start
    return EpochStats(total_loss / max(seen, 1), correct / max(seen, 1), seen / max(elapsed, 1e-9), elapsed)


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 256, tta: str = "none",
                   device: torch.device | str = "cpu", channels_last: bool = True, progress: bool = False,
                   desc: str = "eval") -> torch.Tensor:
    """Mean logits over the TTA views for uint8 faces (N, 48, 48) -> float32 (N, C)."""
    model.eval()
    device = torch.device(device)
    out = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", disable=not progress,
                      dynamic_ncols=True):
        views = tta_views(images[start : start + batch_size], tta)  # (V, B, 1, S, S)
        v, b = views.shape[:2]
        x = views.reshape(v * b, *views.shape[2:]).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = model(x).float().reshape(v, b, -1)
        # Average probabilities over views, returned as log-probabilities (argmax-equivalent):
        # log(mean_v p_v) = logsumexp_v(log p_v) - log V, finite even where a p_v underflows.
        logp = F.log_softmax(logits, dim=-1)
        out.append((torch.logsumexp(logp, dim=0) - math.log(v)).cpu())
    return torch.cat(out)


def evaluate(model: nn.Module, data: FaceDataset, criterion: nn.Module | None = None, batch_size: int = 256,
             tta: str = "none", device: torch.device | str = "cpu", channels_last: bool = True,
             progress: bool = False) -> tuple[dict, float]:
    """Metrics dict (see ``train.metrics.classification_metrics``) and mean loss."""
    logits = predict_logits(model, data.images, batch_size, tta, device, channels_last, progress,
                            desc=f"eval {data.split}")
    loss = float(criterion(logits, data.labels)) if criterion is not None else float("nan")
    metrics = classification_metrics(data.labels.tolist(), logits.argmax(1).tolist(), split=data.split,
                                      source=data.source)
    metrics["tta"] = tta
    return metrics, loss
