"""Time to accuracy: epochs, wall-clock and CPU-hours a run needed to reach 60 / 65 / 70% PublicTest.

    python benchmarks/time_to_accuracy.py --run ~/fer-runs/campaign
    python benchmarks/time_to_accuracy.py --run weights --targets 0.5 0.53      # the shipped history
    python benchmarks/time_to_accuracy.py --run DIR --plot docs/time_to_accuracy.png

Reads the run's ``history.csv`` (``python -m train fit`` writes one row per epoch). An epoch
counts at the better of its raw and EMA weights (the trainer keeps whichever scores higher).
Wall-clock is training plus evaluation time of each epoch (startup and data loading are not
counted); CPU-hours are the training process's CPU time over all its threads, which stays
honest when other work shared the machine. Each target row names the hardware that trained
the epochs up to it, since a campaign can move between machines.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Reached:
    target: float
    epoch: int | None  # first epoch at or above the target; None if not reached
    accuracy: float | None
    wall_hours: float | None
    cpu_hours: float | None  # None where the history did not record CPU time
    hardware: list[str]


def _f(row: dict, key: str) -> float | None:
    try:
        return float(row[key])
    except (KeyError, TypeError, ValueError):
        return None


def epoch_accuracy(row: dict) -> float:
    """The better of the raw and EMA weights' PublicTest accuracy for one epoch."""
    return max(a for a in (_f(row, "val_acc"), _f(row, "val_acc_ema")) if a is not None)


def read_history(run: Path) -> list[dict]:
    path = run / "history.csv" if run.is_dir() else run
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no history.csv (a run directory of python -m train fit, or its export)")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path}: no epochs recorded yet")
    return rows


def time_to_accuracy(rows: list[dict], targets: list[float]) -> list[Reached]:
    out = []
    for t in targets:
        wall, cpu, hw, got = 0.0, 0.0, [], None
        cpu_known = True
        for r in rows:
            wall += (_f(r, "epoch_seconds") or 0.0) + (_f(r, "eval_seconds") or 0.0)
            c = _f(r, "cpu_seconds")
            cpu_known &= c is not None
            cpu += c or 0.0
            label = f"{r.get('hardware') or 'unrecorded hardware'} ({r.get('precision') or '?'})"
            if label not in hw:
                hw.append(label)
            if epoch_accuracy(r) >= t:
                got = r
                break
        if got is None:
            out.append(Reached(t, None, None, None, None, []))
        else:
            out.append(Reached(t, int(got["epoch"]), epoch_accuracy(got), wall / 3600, cpu / 3600 if cpu_known else None,
                               hw))
    return out


def format_table(rows: list[dict], reached: list[Reached]) -> str:
    best = max(rows, key=epoch_accuracy)
    lines = ["| PublicTest target | epoch | accuracy then | wall-clock (h) | CPU-hours | hardware |",
             "|---:|---:|---:|---:|---:|---|"]
    for r in reached:
        if r.epoch is None:
            lines.append(f"| {r.target:.0%} | not reached | best {epoch_accuracy(best):.4f} (epoch {best['epoch']}) "
                         f"| | | |")
        else:
            cpu = f"{r.cpu_hours:.2f}" if r.cpu_hours is not None else "not recorded"
            lines.append(f"| {r.target:.0%} | {r.epoch} | {r.accuracy:.4f} | {r.wall_hours:.2f} | {cpu} | "
                         f"{'; '.join(r.hardware)} |")
    lines.append(f"\n{len(rows)} epoch(s) recorded; best {epoch_accuracy(best):.4f} at epoch {best['epoch']}.")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cpu, acc, total = [], [], 0.0
    for r in rows:
        total += (_f(r, "cpu_seconds") or ((_f(r, "epoch_seconds") or 0.0) + (_f(r, "eval_seconds") or 0.0))) / 3600
        cpu.append(total)
        acc.append(epoch_accuracy(r))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(cpu, acc, "o-")
    for t in (0.60, 0.65, 0.70):
        ax.axhline(t, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("CPU-hours (training process, all threads)")
    ax.set_ylabel("PublicTest accuracy (best of raw/EMA)")
    ax.set_title("Time to accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, type=Path, help="run directory (or its history.csv)")
    p.add_argument("--targets", type=float, nargs="+", default=[0.60, 0.65, 0.70], help="accuracies (0-1)")
    p.add_argument("--plot", type=Path, default=None, help="also write accuracy vs CPU-hours as a PNG")
    args = p.parse_args(argv)
    try:
        rows = read_history(args.run)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(rows, time_to_accuracy(rows, args.targets)))
    if args.plot:
        print(f"wrote {plot(rows, args.plot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
