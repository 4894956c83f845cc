"""``python -m train fit``: train, checkpoint every epoch, keep the best epoch, write outputs.

Run directory layout::

    config.json      resolved TrainConfig (+ device, precision, data fingerprints)
    checkpoint.pt    last complete epoch: model, optimizer, scheduler, history, RNG (resume)
    best.safetensors best epoch so far (float32) + best.json card
    history.csv      per-epoch loss/accuracy/images-per-second, curves.png
    metrics.json     best epoch on the evaluation split, confusion.png
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import torch
from torch import nn

from fer_demo import __version__
from fer_demo.model import EMOTIONS, build_model
from fer_demo.transforms import TrainAugment
from fer_demo.weights import ModelCard, save_model
from train.config import TrainConfig, config_from_dict
from train.data import FaceDataset, load_split
from train.engine import evaluate, resolve_precision, train_one_epoch
from train.metrics import plot_confusion, plot_history

CHECKPOINT = "checkpoint.pt"
BEST = "best.safetensors"


class ResumeError(RuntimeError):
    """The run directory cannot be resumed as asked (no checkpoint, different config or data)."""


def code_version() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        if rev.returncode == 0 and rev.stdout.strip():
            return f"{__version__}+g{rev.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__


def class_weights(counts: list[int], power: float) -> torch.Tensor:
    """(n_max / n_c) ** power, normalised so the sample-weighted mean is 1."""
    c = torch.tensor(counts, dtype=torch.float64).clamp(min=1)
    w = (c.max() / c) ** power
    w = w / ((w * c).sum() / c.sum())
    return w.float()


class CheckpointWriteError(OSError):
    """The run directory cannot be written (full disk, no permission, not a directory)."""


def atomic_torch_save(obj: dict, path: Path) -> None:
    """Write to a temporary file, fsync, then rename: a crash never leaves half a checkpoint.

    A failed write (disk full, ...) removes the temporary file and leaves the previous
    checkpoint as it was; it raises ``CheckpointWriteError`` saying which file and why.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise CheckpointWriteError(f"cannot write {path} ({e.strerror or e}); the previous checkpoint, "
                                   "if any, is unchanged") from None


CHECKPOINT_KEYS = ("config", "epoch", "model", "optimizer", "scheduler", "fingerprints")


def read_checkpoint(path: Path) -> dict:
    """A checkpoint written by ``fit`` (``weights_only=True``: no pickled code is ever run).

    Raises ``ResumeError`` for a truncated, corrupt or foreign file.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for bad files; all mean "unusable"
        raise ResumeError(f"--resume: {path} is not a readable checkpoint ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:200] if str(e) else 'no detail'}); delete it to start "
                          "over") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise ResumeError(f"--resume: {path} is not a checkpoint of this trainer (missing {missing})")
    return state


def subset(data: FaceDataset, limit: int | None, seed: int) -> FaceDataset:
    if limit is None or limit >= len(data):
        return data
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:limit]
    return FaceDataset(data.images[idx], data.labels[idx], data.source + f"[{limit}]", data.split)


def write_history(rows: list[dict], out: Path) -> None:
    with open(out / "history.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    plot_history(rows, out / "curves.png")


def fit(cfg: TrainConfig, resume: bool = False, device: str | None = None) -> dict:
    """Train per ``cfg``; returns the best epoch's metrics. ``resume`` continues ``cfg.out``."""
    out = Path(cfg.out)
    ckpt_path = out / CHECKPOINT
    state = None
    if resume:
        if not ckpt_path.is_file():
            raise ResumeError(f"--resume: no {CHECKPOINT} in {out}")
        state = read_checkpoint(ckpt_path)
        saved = config_from_dict(state["config"])
        # Only presentation flags may differ on resume; anything else would silently change the run.
        differ = [k for k, v in saved.to_dict().items() if k not in ("progress", "data") and cfg.to_dict()[k] != v]
        if differ:
            raise ResumeError(f"--resume: config differs from the checkpoint's in {differ}; use the same flags")
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    precision = resolve_precision(cfg.precision, dev)
    torch.manual_seed(cfg.seed)

    train_data = subset(load_split(cfg.data, "train", cfg.progress), cfg.limit_train, cfg.seed)
    eval_data = subset(load_split(cfg.data, "test", cfg.progress), cfg.limit_eval, cfg.seed + 1)
    fingerprints = {"train": train_data.fingerprint(), "test": eval_data.fingerprint()}
    if state is not None and state["fingerprints"] != fingerprints:
        raise ResumeError(f"--resume: the dataset at {cfg.data} changed since the checkpoint was written "
                          f"(fingerprint {fingerprints} != {state['fingerprints']})")

    model = build_model(cfg.init, cfg.imagenet_weights).to(dev)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    counts = train_data.class_counts()
    weights = class_weights(counts, cfg.class_weight_power).to(dev)
    criterion = nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.label_smoothing)
    eval_criterion = nn.CrossEntropyLoss()
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]  # BN and biases
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "adamw":
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    elif cfg.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    else:
        raise ValueError(f"Invalid optimizer {cfg.optimizer!r}. Only 'adamw' and 'sgd' are supported.")
    steps = len(train_data) // cfg.batch_size
    if steps == 0:
        raise ValueError(f"batch_size {cfg.batch_size} is larger than the training set ({len(train_data)})")
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps,
                                                    pct_start=cfg.warmup_frac, div_factor=25, final_div_factor=1e3)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16-amp" else None
    augment = TrainAugment(max_rotation=cfg.max_rotation, scale=(cfg.scale_min, cfg.scale_max),
                           max_shift=cfg.max_shift, erase_p=cfg.erase_p)

    history: list[dict] = []
    best_acc, start_epoch = -1.0, 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history, best_acc, start_epoch = state["history"], state["best_acc"], state["epoch"]
        print(f"resuming {out} after epoch {start_epoch} (best accuracy so far {best_acc:.4f})", flush=True)

    run_info = {**cfg.to_dict(), "device": str(dev), "resolved_precision": precision, "fingerprints": fingerprints,
                "train_size": len(train_data), "eval_size": len(eval_data), "class_counts": counts,
                "class_weights": [round(w, 4) for w in weights.tolist()], "torch": torch.__version__,
                "code_version": code_version()}
    (out / "config.json").write_text(json.dumps(run_info, indent=2) + "\n")

    for epoch in range(start_epoch, cfg.epochs):
        # Every random draw of an epoch comes from (seed, epoch): a resumed run repeats it exactly.
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        stats = train_one_epoch(model, train_data, optimizer, scheduler, criterion, augment, gen, cfg.batch_size,
                                dev, precision, cfg.channels_last, scaler, cfg.grad_clip, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                                progress=cfg.progress)
        metrics, val_loss = evaluate(model, eval_data, eval_criterion, cfg.eval_batch_size, device=dev,
                                     channels_last=cfg.channels_last)
        row = {"epoch": epoch + 1, "train_loss": round(stats.loss, 5), "train_acc": round(stats.accuracy, 5),
               "val_loss": round(val_loss, 5), "val_acc": round(metrics["accuracy"], 5),
               "val_macro_f1": round(metrics["macro_f1"], 5), "images_per_s": round(stats.images_per_s, 1),
               "epoch_seconds": round(stats.seconds, 1), "lr_end": scheduler.get_last_lr()[0]}
        history.append(row)
        print(json.dumps(row), flush=True)
        if metrics["accuracy"] > best_acc:
            best_acc = metrics["accuracy"]
            metrics.update(epoch=epoch + 1, data=cfg.data)
            save_model(model, out / BEST, ModelCard.current(training=run_info, metrics=metrics), dtype=torch.float32)
            (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
            plot_confusion(metrics["confusion_matrix"], out / "confusion.png",
                           f"{eval_data.source} — epoch {epoch + 1}, accuracy {best_acc:.4f}")
        write_history(history, out)
        atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else {},
                           "epoch": epoch + 1, "history": history, "best_acc": best_acc, "config": cfg.to_dict(),
                           "fingerprints": fingerprints, "rng": torch.get_rng_state()}, ckpt_path)
    return json.loads((out / "metrics.json").read_text())


__all__ = ["fit", "ResumeError", "class_weights", "EMOTIONS"]
