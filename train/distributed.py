"""Several processes, one training run: PyTorch DDP started by ``torchrun``.

    torchrun --standalone --nproc-per-node 2 -m train fit --batch-size 64 ...          # one machine
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d \\
             --rdzv-endpoint HOST:29500 --rdzv-id fer -m train fit --batch-size 1024 ...  # two machines

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them (plain ``python -m
train fit``) this is one process and nothing here does anything. The rules, the same for any
number of processes:

- ``--batch-size`` is the **global** batch: each of N processes takes ``batch_size / N`` of every
  step's images (it must divide). The LR, the schedule, the steps per epoch and the data each
  step sees do not depend on N; raise the LR yourself if you raise the global batch.
- Every process draws the epoch's order and each step's augmentation for the whole global batch
  from the same seeded generator and keeps its own slice, so N processes see exactly the images
  (and crops, flips...) one process would see with the same global batch.
- DDP averages the gradients (NCCL on GPUs, Gloo on CPUs). What is not shared: BatchNorm
  statistics are per process (over ``batch_size / N`` faces), dropout masks are drawn per process,
  and the class-weighted loss is averaged per process before the gradients are; so a run on N
  processes is close to, not bitwise equal to, the one-process run (``tests/test_distributed.py``
  measures how close).
- Training loss, accuracy and throughput are summed over the processes every step. Rank 0 alone
  evaluates, writes checkpoints and every output file; the others wait for it.
- ``--resume`` works with any number of processes (the checkpoint holds no per-process state),
  as long as ``batch_size`` divides by it. Every process reads the checkpoint, so on several
  machines the run directory must be on a shared file system (or copied to each machine).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place in the run: ``rank`` of ``size`` processes (``local_rank`` on its machine)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def device(self, requested: str | None) -> torch.device:
        """The device this process trains on: ``requested``, else its own GPU, else the CPU."""
        if requested is not None:
            return torch.device(requested)
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def share(self, batch_size: int) -> int:
        """This process's part of a global batch of ``batch_size``."""
        if batch_size % self.size:
            raise ValueError(f"--batch-size {batch_size} is the global batch and must divide by the number of "
                             f"processes ({self.size}); use a multiple of {self.size}")
        return batch_size // self.size

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sum of ``values`` over every process (``values`` itself with one process)."""
        if not self.distributed:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every process."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def init_world(device: str | None = None) -> World:
    """Join the process group ``torchrun`` set up (NCCL on GPUs, Gloo on CPUs); one process: no group."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    world = World(rank=int(os.environ.get("RANK", "0")), size=size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if not world.distributed or dist.is_initialized():
        return world
    dev = world.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return world


def close_world(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """``model`` as DDP for training when there are several processes (the same module otherwise)."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
