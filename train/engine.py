"""Step functions: one training epoch, batched prediction and evaluation."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from fer_demo.calibration import calibration_metrics, view_probabilities
from fer_demo.transforms import TrainAugment, tta_views
from train import hardware
from train.data import FaceDataset
from train.metrics import classification_metrics


def resolve_precision(precision: str, device: torch.device, choose_bf16: Callable[[], str] | None = None) -> str:
    """The precision a run uses on ``device``: "fp32", "bf16" (CPU autocast) or "fp16-amp" (CUDA).

    ``"auto"`` on a CPU: fp32 without native bf16 (emulated bf16 is ~15x slower); with native
    bf16, ``choose_bf16()`` decides (the trainer measures, see ``pick_cpu_precision``: an Intel
    Xeon with AVX-512 BF16 but no AMX trained *slower* in bf16 than in fp32), else bf16.
    """
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"Invalid precision {precision!r}. Only 'auto', 'fp32' and 'bf16' are supported.")
    if device.type == "cuda":
        return "fp32" if precision == "fp32" else "fp16-amp"
    if precision == "auto":
        if not hardware.bf16_native():
            return "fp32"
        return choose_bf16() if choose_bf16 is not None else "bf16"
    return precision


def pick_cpu_precision(batch_size: int = 32, steps: int = 2, margin: float = 1.1) -> tuple[str, dict[str, float]]:
    """Time training steps of the real model in fp32 and bf16 on this CPU; bf16 wins only when
    it is at least ``margin`` times faster. Returns the choice and the measured img/s (~10-20 s)."""
    from fer_demo.model import FACE_SIZE, build_model

    gen = torch.Generator().manual_seed(0)
    faces = torch.randint(0, 256, (batch_size, FACE_SIZE, FACE_SIZE), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 7, (batch_size,), generator=gen)
    x = TrainAugment()(faces, gen).contiguous(memory_format=torch.channels_last)
    rng = torch.get_rng_state()  # leave the caller's random stream as it was
    speed = {}
    for precision in ("fp32", "bf16"):
        model = build_model().to(memory_format=torch.channels_last).train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        for i in range(steps + 1):  # the first step warms up oneDNN's kernels
            if i == 1:
                t0 = time.perf_counter()
            with autocast(torch.device("cpu"), precision):
                loss = F.cross_entropy(model(x).float(), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
        speed[precision] = steps * batch_size / (time.perf_counter() - t0)
    torch.set_rng_state(rng)
    return ("bf16" if speed["bf16"] >= margin * speed["fp32"] else "fp32"), speed


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
    cpu_seconds: float = 0.0  # process CPU time (all threads): what "CPU-hours" add up


@dataclass
class EpochProgress:
    """Where an epoch stands after ``step`` optimiser steps: the running sums its statistics
    come from. Saved in a mid-epoch checkpoint (with the RNG states) so a resumed epoch ends
    with the same numbers as an uninterrupted one."""

    step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0  # wall-clock spent on this epoch's steps so far, across sessions
    cpu_seconds: float = 0.0
    segment_seconds: float = field(default=0.0, compare=False)  # of ``seconds``, spent since this process started it
    segment_images: int = field(default=0, compare=False)

    @property
    def images_per_s(self) -> float:
        """Throughput of this process on this epoch (not of earlier sessions' machines)."""
        return self.segment_images / self.segment_seconds if self.segment_seconds > 0 else 0.0

    def stats(self) -> EpochStats:
        return EpochStats(self.loss_sum / max(self.seen, 1), self.correct / max(self.seen, 1), self.images_per_s,
                          self.seconds, self.cpu_seconds)

    def to_dict(self) -> dict:
        return {"step": self.step, "loss_sum": self.loss_sum, "correct": self.correct, "seen": self.seen,
                "seconds": self.seconds, "cpu_seconds": self.cpu_seconds}

    @classmethod
    def from_dict(cls, d: dict) -> EpochProgress:
        return cls(**{k: d[k] for k in ("step", "loss_sum", "correct", "seen", "seconds", "cpu_seconds")})


# Training steps between two reads of the running statistics on a GPU (each read waits for the device).
SYNC_EVERY = 25


def train_one_epoch(model: nn.Module, data: FaceDataset, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, criterion: nn.Module,
                    augment: TrainAugment, generator: torch.Generator, batch_size: int,
                    device: torch.device, precision: str, channels_last: bool,
                    scaler: torch.amp.GradScaler | None = None, grad_clip: float = 0.0, desc: str = "train",
                    progress: bool = True, order: torch.Tensor | None = None, start: EpochProgress | None = None,
                    on_step: Callable[[EpochProgress], None] | None = None,
                    ema: torch.optim.swa_utils.AveragedModel | None = None, part: tuple[int, int] = (0, 1),
                    reduce: Callable[[list[float]], list[float]] | None = None,
                    sync_every: int | None = None,
                    corrupt: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None) -> EpochStats:
    """One pass over ``data`` (drops the last partial batch so BatchNorm never sees a batch of 1).

    ``order``: the epoch's permutation of ``data``; by default drawn from ``generator``.
    ``start``: continue an epoch after ``start.step`` steps (``generator`` and torch's global RNG
    must then hold the states they had at that step). ``on_step(progress)`` runs after every
    optimiser step (the trainer checkpoints from it). ``ema``: weights averaged after each step.

    Several processes (``train.distributed``): ``batch_size`` is the global batch; process
    ``part = (rank, size)`` augments the whole global batch (the same draws on every process) and
    trains on its slice; ``reduce`` sums each step's (loss sum, correct, images) over processes,
    so the running statistics, and a checkpoint of them, are the whole run's.

    ``sync_every``: steps between two reads of those statistics (and calls of ``on_step``);
    default 1 on a CPU, ``SYNC_EVERY`` on a GPU, where each read waits for the device.

    ``corrupt``: a host step (``train.corruptions.PhotoCorrupt``) run on each global batch of uint8
    faces on the CPU, before the copy to the device and before ``augment``; both draw from
    ``generator``, in that order. On a CPU this is ``augment(corrupt(faces))`` exactly.
    """
    model.train()
    n = len(data)
    if order is None:
        order = torch.randperm(n, generator=generator)
    steps = n // batch_size
    rank, size = part
    share = batch_size // size
    p = start if start is not None else EpochProgress()
    p.segment_seconds, p.segment_images = 0.0, 0
    # On a GPU the faces live there and are augmented there, and the statistics are read back
    # every few steps, so the host queues work ahead instead of waiting for every step. A host
    # step (``corrupt``, OpenCV) keeps the faces on the CPU: each batch is corrupted there and then
    # copied over from pinned memory without waiting, instead of a round trip device -> CPU -> device.
    on_cpu = device.type == "cpu"
    images = data.images if on_cpu or corrupt is not None else data.images.to(device)
    if sync_every is None:
        sync_every = 1 if on_cpu else SYNC_EVERY
    pending: list[tuple[torch.Tensor, torch.Tensor, int]] = []  # (loss, correct, images) per step
    bar = tqdm(range(p.step, steps), desc=desc, unit="batch", disable=not progress, dynamic_ncols=True,
               initial=p.step, total=steps)
    t0, c0 = time.perf_counter(), time.process_time()
    for step in bar:
        idx = order[step * batch_size : (step + 1) * batch_size]
        faces = images[idx.to(images.device)]
        if corrupt is not None:
            faces = corrupt(faces, generator)
            if device.type == "cuda":
                faces = faces.pin_memory()
            faces = faces.to(device, non_blocking=True)
        x = augment(faces, generator)
        y, target = data.labels[idx], data.targets(idx)
        if size > 1:
            part_of = slice(rank * share, (rank + 1) * share)
            x, y, target = x[part_of], y[part_of], target[part_of]
        x, y, target = (t.to(device, non_blocking=True) for t in (x, y, target))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            logits = model(x)
            loss = criterion(logits.float(), target)
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
        if ema is not None:
            ema.update_parameters(model)
        pending.append((loss.detach(), (logits.argmax(1) == y).sum(), len(y)))
        if len(pending) < sync_every and step + 1 < steps:
            continue
        p.step = step + 1
        # (loss sum, correct, images, CPU seconds): of this process, or summed over all of them
        counts = [k for _, _, k in pending]
        read = torch.stack([torch.stack((lo.double(), ok.double())) for lo, ok, _ in pending]).tolist()  # one wait
        sums = [sum(lo * k for (lo, _), k in zip(read, counts)), float(sum(ok for _, ok in read)), float(sum(counts)),
                time.process_time() - c0]
        pending.clear()
        if reduce is not None:
            sums = reduce(sums)
        p.loss_sum += sums[0]
        p.correct += int(sums[1])
        p.seen += int(sums[2])
        dt = time.perf_counter() - t0
        p.seconds += dt
        p.cpu_seconds += sums[3]
        p.segment_seconds += dt
        p.segment_images += int(sums[2])
        bar.set_postfix(loss=f"{p.loss_sum / p.seen:.3f}", acc=f"{p.correct / p.seen:.3f}",
                        img_s=f"{p.images_per_s:.0f}", lr=f"{scheduler.get_last_lr()[0]:.4f}")
        if on_step is not None:
            on_step(p)
        t0, c0 = time.perf_counter(), time.process_time()
    bar.close()
    return p.stats()


@torch.no_grad()
def predict_view_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 256, tta: str = "none",
                        device: torch.device | str = "cpu", channels_last: bool = True, progress: bool = False,
                        desc: str = "eval") -> torch.Tensor:
    """Logits of every TTA view of uint8 faces (N, 48, 48) -> float32 (V, N, C)."""
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
        out.append(model(x).float().reshape(v, b, -1).cpu())
    return torch.cat(out, dim=1)


def average_log_probs(view_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log(mean_v softmax(z_v / T)) for (V, N, C) logits -> (N, C), finite where a p_v underflows."""
    logp = F.log_softmax(view_logits.float() / temperature, dim=-1)
    return torch.logsumexp(logp, dim=0) - math.log(view_logits.shape[0])


def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 256, tta: str = "none",
                   device: torch.device | str = "cpu", channels_last: bool = True, progress: bool = False,
                   desc: str = "eval") -> torch.Tensor:
    """Mean probabilities over the TTA views as log-probabilities (argmax-equivalent): (N, C)."""
    return average_log_probs(predict_view_logits(model, images, batch_size, tta, device, channels_last, progress,
                                                 desc))


def view_logits_metrics(view_logits: torch.Tensor, labels: torch.Tensor, split: str, source: str, tta: str = "none",
                        temperature: float | None = None) -> dict:
    """Classification metrics of the shown output (mean of the views' softmax at ``temperature``,
    1 when None) plus its calibration: ECE, NLL, Brier before scaling (T=1) and, with a
    temperature, after it (``fer_demo.calibration``)."""
    t = 1.0 if temperature is None else temperature
    probs = view_probabilities(view_logits, t)
    metrics = classification_metrics(labels.tolist(), probs.argmax(1).tolist(), split=split, source=source)
    metrics["tta"] = tta
    metrics["calibration"] = {"temperature": t, "before": calibration_metrics(view_probabilities(view_logits), labels)}
    if temperature is not None:
        metrics["calibration"]["after"] = calibration_metrics(probs, labels)
    return metrics


def evaluate(model: nn.Module, data: FaceDataset, criterion: nn.Module | None = None, batch_size: int = 256,
             tta: str = "none", device: torch.device | str = "cpu", channels_last: bool = True,
             progress: bool = False, temperature: float | None = None) -> tuple[dict, float]:
    """Metrics dict (``train.metrics.classification_metrics`` + calibration) and mean loss (of the
    unscaled output). ``temperature``: score the calibrated output the app shows."""
    view_logits = predict_view_logits(model, data.images, batch_size, tta, device, channels_last, progress,
                                      desc=f"eval {data.split}")
    loss = float(criterion(average_log_probs(view_logits), data.labels)) if criterion is not None else float("nan")
    return view_logits_metrics(view_logits, data.labels, data.split, data.source, tta, temperature), loss
