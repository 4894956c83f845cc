"""``python -m train fit``: train, checkpoint often, keep the best epoch, write outputs.

Run directory layout::

    config.json      resolved TrainConfig (+ device, precision, data fingerprints, hardware)
    checkpoint.pt    the latest state: model, optimizer, scheduler, EMA, history, RNG states,
                     and, when written mid-epoch, the step and the epoch's running sums (resume)
    progress.json    what ``python -m train status`` reads: step, throughput, segments, pid
    best.safetensors best epoch so far (float32) + best.json card
    history.csv      per-epoch loss/accuracy/throughput/hardware, curves.png
    metrics.json     best epoch on the evaluation split, confusion.png
                     (both plots redrawn at most every PLOT_EVERY_SECONDS and after the last epoch)

A checkpoint is written at the end of every epoch and every ``checkpoint_minutes`` inside
one; ``--resume`` continues from it (mid-epoch too) with the same data order and random
draws as an uninterrupted run, so on the same machine and precision the result is bitwise
the same. Each start or resume opens a *segment* that records the hardware and precision it
ran on.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import socket
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from fer_demo import __version__
from fer_demo.model import EMOTIONS, build_model
from fer_demo.transforms import TrainAugment, eval_transform
from fer_demo.weights import ModelCard, atomic_write, load_model, save_model
from train.config import TrainConfig, config_from_dict
from train.corruptions import PhotoCorrupt
from train.data import FaceDataset, load_split
from train.distributed import World, close_world, init_world, wrap
from train.engine import EpochProgress, evaluate, pick_cpu_precision, resolve_precision, train_one_epoch
from train.hardware import describe
from train.metrics import plot_confusion, plot_history

CHECKPOINT = "checkpoint.pt"
BEST = "best.safetensors"
PROGRESS = "progress.json"
# Flags that may differ on --resume: where the data is, how it is shown, how often it is saved,
# and the numerics chosen per machine. Anything else would silently change the run.
RESUME_MAY_DIFFER = ("progress", "data", "checkpoint_minutes", "precision", "channels_last")


class ResumeError(RuntimeError):
    """The run directory cannot be resumed as asked (no checkpoint, different config or data)."""


def code_version() -> str:
    """``<version>+g<commit>``; ``FER_CODE_VERSION`` names it where the tree has no git metadata
    (a copy of the code on a rented training machine)."""
    if os.environ.get("FER_CODE_VERSION"):
        return os.environ["FER_CODE_VERSION"]
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
    return data.subset(idx, data.source + f"[{limit}]")


def write_history(rows: list[dict], out: Path, plot: bool = True) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))  # a run resumed by newer code may add columns
    with open(out / "history.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(rows)
    if plot:
        plot_history(rows, out / "curves.png")


# The curves and the best epoch's confusion matrix are redrawn at most this often (and after the
# last epoch): drawing them takes ~1 s, which is a third of an epoch on a GPU and nothing on a CPU.
PLOT_EVERY_SECONDS = 60.0


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
                    ) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-step LR schedule of ``cfg.schedule`` over ``cfg.epochs * steps_per_epoch`` steps."""
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total,
                                                   pct_start=cfg.warmup_frac, div_factor=25, final_div_factor=1e3)
    if cfg.schedule == "wsd":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: wsd_factor(step, total, cfg))
    raise ValueError(f"Invalid schedule {cfg.schedule!r}. Only 'onecycle' and 'wsd' are supported.")


def wsd_phases(total: int, cfg: TrainConfig) -> tuple[int, int]:
    """(end of warmup, start of decay) in steps for a wsd run of ``total`` steps."""
    warm = max(1, round(cfg.warmup_frac * total))
    decay_start = max(warm, total - round(cfg.decay_frac * total))
    return warm, decay_start


def wsd_factor(step: int, total: int, cfg: TrainConfig) -> float:
    """LR multiplier: linear warmup from 1/25 of the peak, hold, linear decay to 1/1000 of it."""
    warm, decay_start = wsd_phases(total, cfg)
    if step < warm:
        return 1 / 25 + (1 - 1 / 25) * step / warm
    if step < decay_start:
        return 1.0
    frac = min(1.0, (step - decay_start) / max(1, total - decay_start))
    return 1.0 + (1e-3 - 1.0) * frac


def check_resumable(saved: TrainConfig, cfg: TrainConfig, done_steps: int, steps_per_epoch: int | None) -> None:
    """Raise ``ResumeError`` unless ``cfg`` may continue a run saved with ``saved``.

    A wsd run may change ``epochs`` while it is in its constant-LR phase under both lengths
    (``steps_per_epoch`` known): the LR so far and until the new decay is the same.
    """
    differ = [k for k, v in saved.to_dict().items() if k not in RESUME_MAY_DIFFER and cfg.to_dict()[k] != v]
    if differ == ["epochs"] and cfg.schedule == "wsd" and steps_per_epoch:
        old_warm, old_decay = wsd_phases(saved.epochs * steps_per_epoch, saved)
        new_warm, new_decay = wsd_phases(cfg.epochs * steps_per_epoch, cfg)
        if max(old_warm, new_warm) <= done_steps < min(old_decay, new_decay):
            return
        raise ResumeError(f"--resume: --epochs can change from {saved.epochs} to {cfg.epochs} only while the wsd "
                          f"run is in its constant-LR phase under both lengths (it has done {done_steps} steps; "
                          f"constant phase {old_warm}-{old_decay} now, {new_warm}-{new_decay} with the new length)")
    if differ:
        raise ResumeError(f"--resume: config differs from the checkpoint's in {differ}; use the same flags")


def initial_model(cfg: TrainConfig) -> torch.nn.Module:
    """The network a run starts from: random ("scratch"), torchvision's ImageNet features
    ("imagenet"), or a release file to fine-tune (``--init weights/fer_vgg19.safetensors``; its
    card must describe this code's model)."""
    if cfg.init.endswith(".safetensors"):
        model, _ = load_model(cfg.init)  # ModelFileError (a clear CLI error) if missing or foreign
        return model.train()
    return build_model(cfg.init, cfg.imagenet_weights)


def describe_release(path: str | Path) -> dict:
    """What a fine-tuning run starts from, for its card: the file's sha256, and the recipe and
    PublicTest accuracy recorded in that release's own card (so the card can say how to rebuild it)."""
    import hashlib

    path = Path(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    _, card = load_model(path)
    training = {k: v for k, v in (card.extra.get("training") or {}).items()
                if k not in ("segments", "fingerprints", "hardware", "class_weights", "compute")}
    metrics = card.extra.get("metrics") or {}
    return {"file": path.name, "sha256": digest, "accuracy": metrics.get("accuracy"), "epoch": metrics.get("epoch"),
            "training": training}


# Training faces (un-augmented, a fixed seeded sample) on which the EMA weights' BatchNorm
# statistics are recomputed before they are scored or saved.
BN_RECALIBRATION_FACES = 2048


def ema_for_eval(ema: torch.optim.swa_utils.AveragedModel, train_data: FaceDataset, cfg: TrainConfig,
                 dev: torch.device) -> nn.Module:
    """A copy of the EMA weights with BatchNorm statistics recomputed (``swa_utils.update_bn``).

    Averaged running statistics do not belong to averaged weights: measured on the campaign after
    3 epochs, the EMA with averaged statistics answered "sad" for every face (18.7% on 1,000
    PublicTest faces), the same weights with recomputed statistics scored 54.4% (raw weights 47.1%).
    The EMA itself is left untouched and torch's RNG restored, so training is the same bit for bit.
    """
    model = copy.deepcopy(ema.module)
    idx = torch.randperm(len(train_data), generator=torch.Generator().manual_seed(cfg.seed + 2))
    x = eval_transform(train_data.images[idx[:BN_RECALIBRATION_FACES]])
    batches = [x[i : i + cfg.eval_batch_size].to(dev) for i in range(0, len(x), cfg.eval_batch_size)]
    if cfg.channels_last:
        batches = [b.contiguous(memory_format=torch.channels_last) for b in batches]
    rng = torch.get_rng_state()
    torch.optim.swa_utils.update_bn(batches, model)  # train mode: dropout draws from torch's RNG
    torch.set_rng_state(rng)
    return model.eval()


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json_atomic(path: Path, obj: dict) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=2) + "\n"))


def fit(cfg: TrainConfig, resume: bool = False, device: str | None = None) -> dict:
    """Train per ``cfg``; returns the best epoch's metrics. ``resume`` continues ``cfg.out``.

    Started by ``torchrun`` it is one of several DDP processes (see ``train.distributed``).
    """
    world = init_world(device)
    try:
        return _fit(cfg, resume, device, world)
    finally:
        close_world(world)


def _fit(cfg: TrainConfig, resume: bool, device: str | None, world: World) -> dict:
    out = Path(cfg.out)
    ckpt_path = out / CHECKPOINT
    state = None
    if resume:
        if not ckpt_path.is_file():
            raise ResumeError(f"--resume: no {CHECKPOINT} in {out}")
        state = read_checkpoint(ckpt_path)
        saved = config_from_dict(state["config"])
        check_resumable(saved, cfg, state.get("global_step", 0), state.get("steps_per_epoch"))
    if cfg.checkpoint_minutes < 0:
        raise ValueError(f"checkpoint_minutes must be >= 0, got {cfg.checkpoint_minutes}")
    world.share(cfg.batch_size)  # the global batch divides by the number of processes
    out.mkdir(parents=True, exist_ok=True)
    dev = world.device(device)
    hardware = describe(dev)
    # "auto" on a CPU with native bf16 is measured once per kind of machine and remembered in the
    # run, so resuming on the same machine keeps its numerics (and bitwise reproducibility).
    known = dict(state.get("precision_by_hardware", {})) if state is not None else {}
    measured: dict[str, float] = {}

    def choose_bf16() -> str:
        if hardware.label not in known:
            known[hardware.label], speed = pick_cpu_precision()
            measured.update(speed)
        return known[hardware.label]

    # Measured by rank 0 alone (processes timing each other would measure nothing), used by all.
    precision = world.broadcast(resolve_precision(cfg.precision, dev, choose_bf16) if world.is_main else None)
    torch.manual_seed(cfg.seed)

    # With FER+ labels, training uses the chosen kind; PublicTest is always scored on majority labels.
    # "mix" keeps FER2013's labels in the target, so PublicTest is scored on FER2013's labels then.
    train_data = subset(load_split(cfg.data, "train", cfg.progress, cfg.ignore_classes, cfg.faces, cfg.ferplus,
                                   cfg.ferplus_labels, cfg.ferplus_mix), cfg.limit_train, cfg.seed)
    eval_votes = cfg.ferplus if cfg.ferplus_labels != "mix" else None
    eval_data = subset(load_split(cfg.data, "test", cfg.progress, cfg.ignore_classes, cfg.faces, eval_votes),
                       cfg.limit_eval, cfg.seed + 1)
    fingerprints = {"train": train_data.fingerprint(), "test": eval_data.fingerprint()}
    if state is not None and state["fingerprints"] != fingerprints:
        raise ResumeError(f"--resume: the dataset at {cfg.data} changed since the checkpoint was written "
                          f"(fingerprint {fingerprints} != {state['fingerprints']})")

    model = initial_model(cfg).to(dev)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    counts = train_data.class_counts()
    weights = class_weights(counts, cfg.class_weight_power).to(dev)
    criterion = nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.label_smoothing)
    eval_criterion = nn.CrossEntropyLoss()
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]  # BN and biases
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if dev.type == "cuda":  # fixed input shapes: let cuDNN pick its fastest kernels once
        torch.backends.cudnn.benchmark = True
    if cfg.optimizer == "adamw":
        # fused: one kernel per step on a GPU (the same update; CPUs keep the default foreach path)
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=cfg.lr, fused=dev.type == "cuda" or None)
    elif cfg.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    else:
        raise ValueError(f"Invalid optimizer {cfg.optimizer!r}. Only 'adamw' and 'sgd' are supported.")
    steps = len(train_data) // cfg.batch_size
    if steps == 0:
        raise ValueError(f"batch_size {cfg.batch_size} is larger than the training set ({len(train_data)})")
    scheduler = build_scheduler(optimizer, cfg, steps)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16-amp" else None
    ema = None
    if cfg.ema_decay > 0:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
    augment = TrainAugment(max_rotation=cfg.max_rotation, scale=(cfg.scale_min, cfg.scale_max),
                           max_shift=cfg.max_shift, erase_p=cfg.erase_p)
    # photo-like corruptions run on each batch on the CPU, before it goes to the device (OpenCV)
    corrupt = PhotoCorrupt(cfg.photo_aug) if cfg.photo_aug > 0 else None

    history: list[dict] = []
    segments: list[dict] = []
    best_acc, start_epoch, start_step = -1.0, 0, 0
    epoch_state: dict | None = None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if cfg.schedule == "wsd":  # the LR follows the (possibly new) length, not the saved one
            for g, base in zip(optimizer.param_groups, scheduler.base_lrs):
                g["lr"] = base * wsd_factor(scheduler.last_epoch, cfg.epochs * steps, cfg)
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if ema is not None and state.get("ema"):
            ema.load_state_dict(state["ema"])
        history, best_acc, start_epoch = state["history"], state["best_acc"], state["epoch"]
        segments = list(state.get("segments", []))
        start_step = state.get("step", 0)
        epoch_state = state.get("epoch_state")
        where = f"epoch {start_epoch} + {start_step}/{steps} steps" if start_step else f"epoch {start_epoch}"
        if world.is_main:
            print(f"resuming {out} after {where} (best accuracy so far {best_acc:.4f})", flush=True)
    train_model = wrap(model, world, dev)  # after loading: DDP starts every process from rank 0's weights
    segments.append({"started": now_iso(), "epoch": start_epoch, "step": start_step, "hardware": hardware.to_dict(),
                     "precision": precision, "precision_measured_img_s": {k: round(v, 1) for k, v in measured.items()}, "device": str(dev), "torch": str(torch.__version__),
                     "code_version": code_version(), "host": socket.gethostname(), "processes": world.size})

    run_info = {**cfg.to_dict(), "changed_from_defaults": cfg.changed_from_defaults(), "device": str(dev),
                "resolved_precision": precision, "fingerprints": fingerprints,
                "train_size": len(train_data), "eval_size": len(eval_data), "class_counts": counts,
                "class_weights": [round(w, 4) for w in weights.tolist()], "torch": torch.__version__,
                "code_version": code_version(), "hardware": hardware.to_dict(), "segments": segments,
                "processes": world.size}
    if cfg.init.endswith(".safetensors"):
        run_info["init_release"] = describe_release(cfg.init)
    if world.is_main:
        (out / "config.json").write_text(json.dumps(run_info, indent=2) + "\n")

    def progress_info(epoch: int, step: int, images_per_s: float) -> dict:
        return {"updated": now_iso(), "pid": os.getpid(), "host": socket.gethostname(), "epochs": cfg.epochs,
                "steps_per_epoch": steps, "batch_size": cfg.batch_size, "epoch": epoch, "step": step,
                "finished": epoch >= cfg.epochs, "images_per_s": round(images_per_s, 1),
                "hardware": hardware.to_dict(), "precision": precision, "best_acc": best_acc,
                "best_epoch": max((r["epoch"] for r in history if r.get("best")), default=None),
                "schedule": cfg.schedule, "segments": segments}

    def checkpoint(epoch: int, step: int, epoch_progress: EpochProgress | None, gen: torch.Generator | None,
                   images_per_s: float) -> None:
        """Everything needed to continue after ``epoch`` complete epochs and ``step`` more steps
        (rank 0 writes it; every process holds the same state)."""
        if not world.is_main:
            return
        atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else {},
                           "ema": ema.state_dict() if ema is not None else {},
                           "epoch": epoch, "step": step, "steps_per_epoch": steps, "global_step": epoch * steps + step,
                           "epoch_state": epoch_progress.to_dict() if epoch_progress is not None else None,
                           "generator": gen.get_state() if gen is not None else None,
                           "history": history, "best_acc": best_acc, "config": cfg.to_dict(),
                           "fingerprints": fingerprints, "segments": segments, "precision_by_hardware": known,
                           "rng": torch.get_rng_state()}, ckpt_path)
        write_json_atomic(out / PROGRESS, progress_info(epoch, step, images_per_s))

    interval = cfg.checkpoint_minutes * 60
    plots: dict = {"drawn": -math.inf, "confusion": None}  # when they were last drawn; the best's to draw
    for epoch in range(start_epoch, cfg.epochs):
        # Every random draw of an epoch comes from (seed, epoch): a resumed run repeats it exactly.
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(len(train_data), generator=gen)
        start = None
        if epoch_state is not None and start_step > 0:  # continue inside this epoch
            gen.set_state(state["generator"])
            torch.set_rng_state(state["rng"])
            start = EpochProgress.from_dict(epoch_state)
        epoch_state, start_step = None, 0
        timers = {"saved": time.monotonic(), "reported": time.monotonic()}

        def on_step(p: EpochProgress, epoch: int = epoch, gen: torch.Generator = gen) -> None:
            t = time.monotonic()
            if interval > 0 and p.step < steps and t - timers["saved"] >= interval:
                checkpoint(epoch, p.step, p, gen, p.images_per_s)
                timers["saved"] = timers["reported"] = time.monotonic()
            elif t - timers["reported"] >= 30 and world.is_main:  # live throughput for `status`
                write_json_atomic(out / PROGRESS, progress_info(epoch, p.step, p.images_per_s))
                timers["reported"] = t

        stats = train_one_epoch(train_model, train_data, optimizer, scheduler, criterion, augment, gen,
                                cfg.batch_size, dev, precision, cfg.channels_last, scaler, cfg.grad_clip,
                                desc=f"epoch {epoch + 1}/{cfg.epochs}", progress=cfg.progress and world.is_main,
                                order=order, start=start, on_step=on_step, ema=ema, part=(world.rank, world.size),
                                reduce=(lambda v: world.sum(v, dev)) if world.distributed else None,
                                corrupt=corrupt)
        if not world.is_main:  # rank 0 evaluates and writes; the others wait for the next epoch
            world.barrier()
            continue
        t_eval = time.perf_counter()
        metrics, val_loss = evaluate(model, eval_data, eval_criterion, cfg.eval_batch_size, device=dev,
                                     channels_last=cfg.channels_last)
        candidates = [("raw", model, metrics)]
        row = {"epoch": epoch + 1, "train_loss": round(stats.loss, 5), "train_acc": round(stats.accuracy, 5),
               "val_loss": round(val_loss, 5), "val_acc": round(metrics["accuracy"], 5),
               "val_macro_f1": round(metrics["macro_f1"], 5)}
        if ema is not None:
            ema_model = ema_for_eval(ema, train_data, cfg, dev)
            ema_metrics, ema_loss = evaluate(ema_model, eval_data, eval_criterion, cfg.eval_batch_size, device=dev,
                                             channels_last=cfg.channels_last)
            candidates.append(("ema", ema_model, ema_metrics))
            row.update(val_acc_ema=round(ema_metrics["accuracy"], 5), val_loss_ema=round(ema_loss, 5))
        kind, chosen, chosen_metrics = max(candidates, key=lambda c: c[2]["accuracy"])  # ties: raw
        row.update(images_per_s=round(stats.images_per_s, 1), epoch_seconds=round(stats.seconds, 1),
                   eval_seconds=round(time.perf_counter() - t_eval, 1), cpu_seconds=round(stats.cpu_seconds, 1),
                   lr_end=scheduler.get_last_lr()[0], precision=precision, hardware=hardware.label,
                   best=chosen_metrics["accuracy"] > best_acc)
        history.append(row)
        print(json.dumps(row), flush=True)
        if cfg.keep_epochs:
            (out / "epochs").mkdir(exist_ok=True)
            save_model(chosen, out / "epochs" / f"epoch_{epoch + 1:03d}.safetensors",
                       ModelCard.current(training=run_info, metrics={**chosen_metrics, "epoch": epoch + 1,
                                                                     "data": cfg.data, "weights": kind}),
                       dtype=torch.float32)
        if chosen_metrics["accuracy"] > best_acc:
            best_acc = chosen_metrics["accuracy"]
            chosen_metrics.update(epoch=epoch + 1, data=cfg.data, weights=kind)
            save_model(chosen, out / BEST, ModelCard.current(training=run_info, metrics=chosen_metrics),
                       dtype=torch.float32)
            (out / "metrics.json").write_text(json.dumps(chosen_metrics, indent=2) + "\n")
            plots["confusion"] = (chosen_metrics["confusion_matrix"],
                                  f"{eval_data.source} — epoch {epoch + 1}, accuracy {best_acc:.4f}")
        draw = epoch + 1 == cfg.epochs or time.monotonic() - plots["drawn"] >= PLOT_EVERY_SECONDS
        if draw and plots["confusion"] is not None:
            matrix, title = plots["confusion"]
            plot_confusion(matrix, out / "confusion.png", title)
            plots["confusion"] = None
        write_history(history, out, plot=draw)
        if draw:
            plots["drawn"] = time.monotonic()
        checkpoint(epoch + 1, 0, None, None, stats.images_per_s)
        world.barrier()
    return world.broadcast(json.loads((out / "metrics.json").read_text()) if world.is_main else None)


__all__ = ["fit", "ResumeError", "class_weights", "build_scheduler", "wsd_factor", "EMOTIONS"]
