"""The serving copy of the classifier: the same network, laid out to run fast on a CPU.

``FERNet`` (``fer_demo.model``) stays the reference: training, export and the tests' fp32
answers. ``FastNet`` is built from it once, at load time, and is what ``EmotionClassifier``
and ``Explainer`` run:

- every BatchNorm is folded into the convolution before it (``torch.nn.utils.fusion``): one
  operation instead of two, the same function in eval mode;
- tensors and weights are channels-last (oneDNN's preferred layout; measured 10-30% faster at
  batch 1 than channels-first, in fp32 and bf16);
- the network is split at the Grad-CAM layer into ``head`` (input -> CAM layer) and ``tail``
  (CAM layer -> logits). The head always runs without autograd; only a CAM runs the tail with
  it, so the backward pass never sees the head;
- every convolution (with its ReLU fused in) runs as a ``fer_demo.packedconv.PackedConv2d``: oneDNN
  with the weights reordered into its blocked layout once, at load time, instead of on every call
  as eager PyTorch does (at batch 1 on 5x5 and 2x2 maps that copy cost as much as the convolution).
  A CAM's backward through the tail runs the same way, on a reordered copy of the flipped kernels.
  Where this torch or CPU lacks the ops (``packed_convolution_available``) the plain layers run;
- with ``precision="bf16"`` the network runs in bfloat16 (weights stored in bf16, oneDNN on AMX /
  AVX512-BF16): the head always, the tail (and its backward for a CAM) when the convolutions are
  packed (eager bf16 convolution backward measured slower than fp32's, so unpacked the tail stays
  float32). At batch 1 this network is bound by reading its 20M weights; half the bytes is most of
  the win. ``precision="auto"`` picks bf16 only where the CPU has native bf16 instructions, fp32
  elsewhere;
- ``threads``: the network runs on ``threads`` CPU threads (default ``fer_demo.limits.ANALYSIS_THREADS``:
  None, torch's default), set for the calling thread only (``fer_demo.threads.intra_op_threads``;
  ``EmotionClassifier`` and ``Explainer`` enter ``FastNet.threads_scope()`` around their passes). Two
  threads are faster on a quiet machine, one on a busy one (see ``limits.ANALYSIS_THREADS``).

The agreement with the reference (top-1, probabilities, heatmaps on PublicTest) is tested in
``tests/test_fastnet.py`` and measured on all of PublicTest by ``benchmarks/speed.py --agreement``.
"""

from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from fer_demo import limits
from fer_demo.model import INPUT_SIZE, FERNet
from fer_demo.packedconv import pack_convolutions, packed_convolution_available
from fer_demo.threads import check_count, intra_op_threads

PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where oneDNN's bf16 is fast."""
    cpu = getattr(torch, "cpu", None)
    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        probe = getattr(cpu, name, None)
        try:
            if probe is not None and probe():
                return True
        except RuntimeError:
            continue
    return False


def resolve_precision(precision: str = "auto", device: torch.device | str = "cpu") -> str:
    """``"auto"`` -> ``"bf16"`` on a CPU with native bf16, else ``"fp32"``; others returned checked."""
    if precision not in PRECISIONS:
        raise ValueError(f"Invalid precision {precision!r}. Only {', '.join(map(repr, PRECISIONS))} are supported.")
    if precision == "auto":
        return "bf16" if torch.device(device).type == "cpu" and native_bf16() else "fp32"
    return precision


def fold_batchnorm(layers: list[nn.Module]) -> list[nn.Module]:
    """Conv2d followed by BatchNorm2d (eval mode) -> one Conv2d computing the same; others kept."""
    out: list[nn.Module] = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, nn.Conv2d) and i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm2d):
            out.append(fuse_conv_bn_eval(layer.eval(), layers[i + 1].eval()))
            i += 2
        else:
            out.append(layer)
            i += 1
    return out


class ToDtype(nn.Module):
    """Casts its input to ``dtype`` (channels-last for 4-d tensors); gradients flow through."""

    def __init__(self, dtype: torch.dtype, channels_last: bool = True) -> None:
        super().__init__()
        self.dtype = dtype
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def extra_repr(self) -> str:
        return f"dtype={self.dtype}, channels_last={self.channels_last}"


class Tail(nn.Module):
    """CAM layer's output -> float32 logits. ``cam`` (an identity on the float32 activations) is the
    module to hook: pytorch-grad-cam reads its activations and gradients."""

    def __init__(self, layers: list[nn.Module], dtype: torch.dtype) -> None:
        super().__init__()
        self.cam = nn.Identity()
        self.body = nn.Sequential(ToDtype(dtype), *layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.cam(x)).float()


class FastNet(nn.Module):
    """``FERNet`` split at ``split_layer`` for serving (see the module docstring).

    Args:
        model: the reference ``FERNet`` (not modified; its weights are copied).
        split_layer: name of a module of ``model.features`` (the card's ``cam_target_layer``).
        precision: ``"fp32"``, ``"bf16"`` or ``"auto"`` (``resolve_precision``).
        packed: run the convolutions as ``PackedConv2d``; None (default): where available on a CPU.
        threads: CPU threads its passes run on (``threads_scope``), for the calling thread only;
            default ``limits.ANALYSIS_THREADS``; None: torch's own setting.

    ``forward(x)``: float32 (N, 1, 40, 40) normalised faces -> float32 logits (N, C), like ``FERNet``.
    ``head(x)``: the CAM layer's activations, float32 (N, 512, 5, 5), computed without autograd.
    """

    def __init__(self, model: FERNet, split_layer: str, precision: str = "auto", packed: bool | None = None,
                 threads: int | None = limits.ANALYSIS_THREADS) -> None:
        super().__init__()
        self.threads = check_count(threads)
        prefix = "features."
        if not split_layer.startswith(prefix) or not split_layer[len(prefix):].isdigit():
            raise ValueError(f"split layer {split_layer!r} must be a layer of model.features, e.g. 'features.35'")
        index = int(split_layer[len(prefix):])
        if not 0 <= index < len(model.features) - 1:
            raise ValueError(f"split layer {split_layer!r} is not inside model.features "
                             f"(features.0 .. features.{len(model.features) - 2})")
        device = next(model.parameters()).device
        self.precision = resolve_precision(precision, device)
        self.split_layer = split_layer
        head_dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        if packed is None:
            packed = device.type == "cpu" and packed_convolution_available(head_dtype)
        self.packed = bool(packed)
        # The tail runs backward for a CAM: in bf16 only with packed weights (eager bf16 convolution
        # backward reorders the weights on every call and measured slower than fp32's).
        tail_dtype = torch.bfloat16 if self.precision == "bf16" and self.packed else torch.float32
        src = copy.deepcopy(model).eval()
        head = fold_batchnorm(list(src.features[: index + 1]))
        tail = fold_batchnorm(list(src.features[index + 1:])) + [src.pool, *src.classifier]
        if self.packed:
            head = pack_convolutions(head, head_dtype, (1, INPUT_SIZE, INPUT_SIZE))
            with torch.no_grad():
                probe = torch.zeros(1, 1, INPUT_SIZE, INPUT_SIZE, dtype=head_dtype)
                cam_size = tuple(nn.Sequential(*head)(probe).shape[1:])
            tail = pack_convolutions(tail, tail_dtype, cam_size, differentiable=True)
        self.head_dtype, self.tail_dtype = head_dtype, tail_dtype
        self.head_net = nn.Sequential(*head).to(head_dtype).to(memory_format=torch.channels_last)
        self.tail = Tail(tail, tail_dtype).to(tail_dtype).to(memory_format=torch.channels_last)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def threads_scope(self) -> contextlib.AbstractContextManager[None]:
        """Context for a pass (forward, or a CAM's forward and backward): ``threads`` CPU threads in the
        calling thread, restored on exit; other threads are unaffected (``fer_demo.threads``)."""
        return intra_op_threads(self.threads)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            x = x.to(self.head_dtype).contiguous(memory_format=torch.channels_last)
            a = self.head_net(x).float()
        # Outside inference mode a clone is an ordinary tensor, usable in an autograd graph.
        return a if torch.is_inference_mode_enabled() else a.clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.tail(self.head(x))
