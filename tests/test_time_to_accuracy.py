"""benchmarks/time_to_accuracy.py on a made-up history whose answers are known."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import time_to_accuracy as tta  # noqa: E402

AVX2 = "AMD EPYC, 2 cores, AVX2, no native bf16"
AMX = "Intel Xeon, 2 cores, AMX, bf16 native"
# epoch, raw acc, EMA acc, train s, eval s, CPU s, hardware, precision
EPOCHS = [(1, 0.40, 0.35, 1200, 60, 2400, AVX2, "fp32"),
          (2, 0.55, 0.58, 1200, 60, 2400, AVX2, "fp32"),
          (3, 0.59, 0.61, 240, 20, 480, AMX, "bf16"),  # EMA crosses 60% first
          (4, 0.66, 0.64, 240, 20, 480, AMX, "bf16")]


def write_history(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "history.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["epoch", "val_acc", "val_acc_ema", "epoch_seconds", "eval_seconds", "cpu_seconds", "hardware",
                    "precision"])
        w.writerows(EPOCHS)
    return path


def test_targets_are_reached_at_the_first_epoch_whose_best_weights_pass(tmp_path):
    rows = tta.read_history(write_history(tmp_path / "run"))
    r60, r65, r70 = tta.time_to_accuracy(rows, [0.60, 0.65, 0.70])
    assert (r60.epoch, r60.accuracy) == (3, 0.61)
    assert r60.wall_hours == pytest.approx((1260 * 2 + 260) / 3600)
    assert r60.cpu_hours == pytest.approx((2400 * 2 + 480) / 3600)
    assert r60.hardware == [f"{AVX2} (fp32)", f"{AMX} (bf16)"]
    assert (r65.epoch, r65.accuracy) == (4, 0.66)
    assert r65.cpu_hours == pytest.approx((2400 * 2 + 480 * 2) / 3600)
    assert r70.epoch is None


def test_cli_prints_the_table_and_a_plot(tmp_path):
    run = write_history(tmp_path / "run")
    png = tmp_path / "tta.png"
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "time_to_accuracy.py"), "--run", str(run),
                          "--plot", str(png)], capture_output=True, text=True, check=True).stdout
    assert "| 60% | 3 | 0.6100 | 0.77 | 1.47 |" in out
    assert "| 70% | not reached | best 0.6600 (epoch 4)" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_history_without_cpu_time_says_not_recorded(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,val_acc,epoch_seconds\n1,0.7,3600\n")
    (r,) = tta.time_to_accuracy(tta.read_history(tmp_path), [0.6])
    assert r.epoch == 1 and r.wall_hours == pytest.approx(1.0) and r.cpu_hours is None


def test_missing_history_is_a_clear_error(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "time_to_accuracy.py"), "--run", str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "no history.csv" in run.stderr and "Traceback" not in run.stderr
