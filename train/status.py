"""``python -m train status --out DIR``: where a (long) run stands, without touching it.

Reads the run's ``progress.json`` (written at every checkpoint and every ~30 s while
training) and ``history.csv``; never the checkpoint itself, so it is instant and safe to
call while the run trains. The ETA is for *this* machine: measured throughput of the run on
this hardware (live when the run is training here, else the epochs it did on this hardware).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from train.fit import PROGRESS
from train.hardware import describe

HISTORY = "history.csv"


class StatusError(ValueError):
    """The folder is not a run directory of ``python -m train fit``."""


@dataclass
class HardwarePart:
    """Consecutive epochs that finished on one kind of machine at one precision."""

    hardware: str
    precision: str
    first_epoch: int
    last_epoch: int
    images_per_s: float  # mean over those epochs
    hours: float  # training + evaluation wall-clock
    cpu_hours: float  # process CPU time (all threads)


@dataclass
class RunStatus:
    out: str
    epochs: int  # planned length
    epochs_done: int  # complete epochs
    step: int  # optimiser steps into the next epoch
    steps_per_epoch: int
    finished: bool
    running: bool  # a live process on this host is training it
    pid: int | None
    updated: str  # when progress.json was last written (UTC)
    best_acc: float | None
    best_epoch: int | None
    last_val_acc: list[float]  # the last few epochs' PublicTest accuracy (raw weights)
    images_per_s: float | None  # current throughput (live run) or this hardware's measured mean
    eta_seconds: float | None  # on this machine; None when unknown
    eta_basis: str
    this_machine: str
    parts: list[HardwarePart] = field(default_factory=list)
    segments: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _read_history(out: Path) -> list[dict]:
    if not (out / HISTORY).is_file():
        return []
    with open(out / HISTORY, newline="") as fh:
        return list(csv.DictReader(fh))


def _float(v: object, default: float = 0.0) -> float:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def pid_alive(pid: int | None, host: str | None) -> bool:
    """True if ``pid`` is a live ``train`` process on this host."""
    import socket

    if not pid or (host and host != socket.gethostname()):
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        if state == "Z":
            return False
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        return "train" in args and "fit" in args  # python -m train fit ...
    except OSError:
        return True  # not Linux: trust kill(0)


def hardware_parts(rows: list[dict]) -> list[HardwarePart]:
    parts: list[HardwarePart] = []
    for r in rows:
        hw, prec, ep = r.get("hardware") or "unrecorded", r.get("precision") or "unrecorded", int(r["epoch"])
        hours = (_float(r.get("epoch_seconds")) + _float(r.get("eval_seconds"))) / 3600
        cpu = _float(r.get("cpu_seconds")) / 3600
        ips = _float(r.get("images_per_s"))
        if parts and parts[-1].hardware == hw and parts[-1].precision == prec:
            p = parts[-1]
            n = p.last_epoch - p.first_epoch + 1
            p.images_per_s = (p.images_per_s * n + ips) / (n + 1)
            p.last_epoch, p.hours, p.cpu_hours = ep, p.hours + hours, p.cpu_hours + cpu
        else:
            parts.append(HardwarePart(hw, prec, ep, ep, ips, hours, cpu))
    return parts


def compute_summary(out: str | Path, up_to_epoch: int | None = None) -> dict:
    """What a run's epochs 1..``up_to_epoch`` (default: all) cost, for the model card: the parts
    of the run by hardware and precision, and the totals (training + evaluation wall-clock hours,
    process CPU-hours). Empty parts when the run has no ``history.csv``."""
    rows = [r for r in _read_history(Path(out)) if up_to_epoch is None or int(r["epoch"]) <= up_to_epoch]
    parts = hardware_parts(rows)
    rounded = [{**asdict(p), "images_per_s": round(p.images_per_s, 1), "hours": round(p.hours, 3),
                "cpu_hours": round(p.cpu_hours, 3)} for p in parts]
    return {"epochs": len(rows), "parts": rounded,
            "hours": round(sum(p.hours for p in parts), 3), "cpu_hours": round(sum(p.cpu_hours for p in parts), 3)}


def run_status(out: str | Path) -> RunStatus:
    out = Path(out)
    try:
        prog = json.loads((out / PROGRESS).read_text())
    except FileNotFoundError:
        raise StatusError(f"{out}: no {PROGRESS}; not a run directory of python -m train fit, or it has not "
                          "written its first checkpoint yet") from None
    except (OSError, ValueError) as e:
        raise StatusError(f"{out / PROGRESS}: unreadable ({e})") from None
    rows = _read_history(out)
    here = describe("cpu")
    running = pid_alive(prog.get("pid"), prog.get("host"))
    spe, batch = int(prog["steps_per_epoch"]), int(prog["batch_size"])
    done_steps = int(prog["epoch"]) * spe + int(prog["step"])
    remaining_images = max(0, int(prog["epochs"]) * spe - done_steps) * batch
    evals_left = max(0, int(prog["epochs"]) - int(prog["epoch"]))
    eval_s = [_float(r.get("eval_seconds")) for r in rows if r.get("hardware") == here.label and r.get("eval_seconds")]
    eval_each = sum(eval_s) / len(eval_s) if eval_s else 0.0
    same_hw = [_float(r["images_per_s"]) for r in rows if r.get("hardware") == here.label and r.get("images_per_s")]
    if running and prog.get("hardware", {}).get("label") == here.label and prog.get("images_per_s"):
        rate, basis = float(prog["images_per_s"]), "live throughput of the running process"
    elif same_hw:
        rate, basis = sum(same_hw) / len(same_hw), f"mean of the {len(same_hw)} epoch(s) this run did on this hardware"
    else:
        rate, basis = None, ("unknown: the run has not trained on this hardware yet (measure with "
                             "benchmarks/train_throughput.py)")
    if prog.get("finished"):
        eta, basis = 0.0, "finished"
    else:
        eta = remaining_images / rate + evals_left * eval_each if rate else None
    return RunStatus(out=str(out), epochs=int(prog["epochs"]), epochs_done=int(prog["epoch"]), step=int(prog["step"]),
                     steps_per_epoch=spe, finished=bool(prog.get("finished")), running=running, pid=prog.get("pid"),
                     updated=prog.get("updated", ""), best_acc=prog.get("best_acc") if rows else None,
                     best_epoch=prog.get("best_epoch"),
                     last_val_acc=[_float(r["val_acc"]) for r in rows[-5:]], images_per_s=rate, eta_seconds=eta,
                     eta_basis=basis, this_machine=here.label, parts=hardware_parts(rows),
                     segments=list(prog.get("segments", [])))


def _hours(seconds: float) -> str:
    h, m = divmod(round(seconds / 60), 60)
    return f"{h} h {m:02d} min" if h else f"{m} min"


def format_status(st: RunStatus) -> str:
    state = "finished" if st.finished else ("training now (pid %d)" % st.pid if st.running else "stopped")
    lines = [f"run        {st.out}",
             f"state      {state}; last update {st.updated}",
             f"progress   {st.epochs_done}/{st.epochs} epochs" + (f" + {st.step}/{st.steps_per_epoch} steps"
                                                               if st.step else "")]
    if st.best_acc is not None:
        lines.append(f"best       PublicTest {st.best_acc:.4f} (epoch {st.best_epoch})")
    if st.last_val_acc:
        lines.append("recent     PublicTest " + ", ".join(f"{a:.4f}" for a in st.last_val_acc) + " (last epochs)")
    lines.append(f"this CPU   {st.this_machine}")
    if st.images_per_s:
        lines.append(f"speed      {st.images_per_s:.1f} img/s ({st.eta_basis})")
    if st.eta_seconds is not None:
        lines.append(f"ETA        {_hours(st.eta_seconds)} of training left on this machine" if not st.finished
                     else "ETA        done")
    else:
        lines.append(f"ETA        {st.eta_basis}")
    if st.parts:
        lines.append("hardware   by epoch:")
        for p in st.parts:
            ep = f"{p.first_epoch}" if p.first_epoch == p.last_epoch else f"{p.first_epoch}-{p.last_epoch}"
            lines.append(f"  epochs {ep:>7}: {p.hardware}, {p.precision}, {p.images_per_s:.1f} img/s, "
                         f"{p.hours:.2f} h wall, {p.cpu_hours:.2f} CPU-h")
    if st.segments:
        lines.append("segments   (each start or --resume):")
        for s in st.segments:
            hw = s.get("hardware", {}).get("label", "?")
            lines.append(f"  {s.get('started', '?')}: from epoch {s.get('epoch')} step {s.get('step')}, "
                         f"{hw}, {s.get('precision')}")
    return "\n".join(lines)


__all__ = ["RunStatus", "HardwarePart", "StatusError", "run_status", "format_status", "hardware_parts"]
