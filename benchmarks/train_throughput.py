"""Training throughput: images/s of one SGD step of the real model, fp32 vs bf16, NCHW vs channels-last.

    python benchmarks/train_throughput.py                      # batch 64, 1 warm-up + 3 timed steps
    python benchmarks/train_throughput.py --no-augment --steps 10 --precision fp32
    python benchmarks/train_throughput.py --steps 1 --warmup 0 --batch-size 8   # smoke run

One step = (optionally) the real ``TrainAugment`` on a uint8 batch, forward, loss, backward,
gradient clipping and an optimiser update (the release recipe's AdamW, or SGD+Nesterov) of
``fer_demo.model.build_model()`` at the 40x40 training input, i.e. what ``python -m train fit``
does per batch. Prints a markdown table with the CPU name and
whether torch sees native bf16 (AVX-512 BF16 / AMX). Without it bf16 autocast is emulated and
~20x slower, hence the small default step count. Run it on an otherwise idle machine: the load
average is printed; the last column (this process's CPU time per step, all threads) stays
close to the work's cost under load.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_demo.model import EMOTIONS, FACE_SIZE, INPUT_SIZE, build_model  # noqa: E402
from fer_demo.transforms import TrainAugment, eval_transform  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.engine import autocast  # noqa: E402
from train.hardware import bf16_native, cpu_model_name  # noqa: E402

RECIPE = TrainConfig()


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=64, help="images per step (the release's) [64]")
    p.add_argument("--steps", type=int, default=3, help="timed steps per configuration [3]")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first [1]")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads [torch's default]")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                   help="include the real TrainAugment in each step (else a precomputed centre crop) [on]")
    p.add_argument("--precision", choices=["fp32", "bf16", "all"], default="all", help="[all]")
    p.add_argument("--channels-last", choices=["on", "off", "both"], default="both", help="[both]")
    p.add_argument("--optimizer", choices=["adamw", "sgd"], default=RECIPE.optimizer,
                   help=f"[{RECIPE.optimizer}, the release recipe's]")
    p.add_argument("--seed", type=int, default=0)
    return p


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    wanted = ["avx2", "avx512f", "avx512_bf16", "amx_bf16"]
    return ", ".join(f for f in wanted if f in flags) or "none of " + "/".join(wanted)


def bench(precision: str, channels_last: bool, args: argparse.Namespace) -> dict:
    """Time ``args.steps`` training steps after ``args.warmup``; returns wall and CPU seconds per step."""
    torch.manual_seed(args.seed)
    device = torch.device("cpu")
    model = build_model().train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if args.optimizer == "adamw":
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(model.parameters(), lr=RECIPE.lr,
                                                             weight_decay=RECIPE.weight_decay)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=RECIPE.momentum, nesterov=True,
                                    weight_decay=5e-4)
    criterion = nn.CrossEntropyLoss(label_smoothing=RECIPE.label_smoothing)
    gen = torch.Generator().manual_seed(args.seed)
    faces = torch.randint(0, 256, (args.batch_size, FACE_SIZE, FACE_SIZE), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, len(EMOTIONS), (args.batch_size,), generator=gen)
    augment = TrainAugment()
    fixed = eval_transform(faces)

    def step() -> None:
        x = augment(faces, gen) if args.augment else fixed
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            loss = criterion(model(x).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if RECIPE.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), RECIPE.grad_clip)
        optimizer.step()

    for _ in range(args.warmup):
        step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        step()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall": wall / args.steps, "cpu": cpu / args.steps}


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.steps < 1 or args.batch_size < 2 or args.warmup < 0:
        raise SystemExit("--steps >= 1, --batch-size >= 2 (BatchNorm) and --warmup >= 0 please")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    precisions = ["fp32", "bf16"] if args.precision == "all" else [args.precision]
    layouts = {"on": [True], "off": [False], "both": [False, True]}[args.channels_last]

    native = bf16_native()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"CPU: {cpu_model_name()} ({os.cpu_count()} logical cores; flags: {cpu_flags()})")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; native bf16: {'yes' if native else 'no'}"
          f"{'' if native else ' (bf16 autocast is emulated: expect it to be much slower)'}")
    print(f"batch {args.batch_size} at {INPUT_SIZE}x{INPUT_SIZE}, {args.optimizer}, "
          f"TrainAugment {'on' if args.augment else 'off'}, "
          f"{args.warmup} warm-up + {args.steps} timed steps; load average {load[0]:.2f}\n", flush=True)

    print("| precision | channels_last | img/s | ms/step | CPU ms/step |")
    print("|---|---|---:|---:|---:|")
    for precision, cl in itertools.product(precisions, layouts):
        r = bench(precision, cl, args)
        print(f"| {precision} | {'on' if cl else 'off'} | {args.batch_size / r['wall']:.1f} | "
              f"{r['wall'] * 1e3:.0f} | {r['cpu'] * 1e3:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
