"""What machine a run (or a part of it) trained on, recorded with every epoch and segment.

A campaign can span sessions on different machines (an AVX2-only EPYC, an AVX-512 BF16
EPYC, a Xeon with AMX, a GPU); the run records which did what so its time and CPU-hours
mean something.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class Hardware:
    """One machine as a run sees it."""

    name: str  # "Intel(R) Xeon(R) Processor" or the CUDA device's name
    device: str  # "cpu" or "cuda"
    cores: int  # CPU cores this process may use (os.sched_getaffinity), or GPUs visible
    isa: str  # torch's CPU capability: "AVX2", "AVX512", "AVX512_BF16", "AMX" ... ("" on CUDA)
    bf16_native: bool  # AVX-512 BF16 / AMX on CPU (what --precision auto looks at)
    threads: int  # torch intra-op threads

    @property
    def label(self) -> str:
        """Short human description, e.g. "Intel(R) Xeon(R) Processor, 2 cores, AVX512, bf16 native"."""
        if self.device == "cuda":
            return f"{self.name} (CUDA)"
        bf16 = "bf16 native" if self.bf16_native else "no native bf16"
        return f"{self.name}, {self.cores} cores, {self.isa}, {bf16}"

    def to_dict(self) -> dict:
        return {**asdict(self), "label": self.label}


def cpu_model_name() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def bf16_native() -> bool:
    """True when this CPU has native bf16 matrix math (AVX-512 BF16 / AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def describe(device: torch.device | str = "cpu") -> Hardware:
    device = torch.device(device)
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        return Hardware(name=torch.cuda.get_device_name(idx), device="cuda", cores=torch.cuda.device_count(),
                        isa="", bf16_native=bool(torch.cuda.is_bf16_supported()), threads=torch.get_num_threads())
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return Hardware(name=cpu_model_name(), device="cpu", cores=cores, isa=torch.backends.cpu.get_cpu_capability(),
                    bf16_native=bf16_native(), threads=torch.get_num_threads())


__all__ = ["Hardware", "describe", "bf16_native", "cpu_model_name"]
