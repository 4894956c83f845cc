"""Convolutions run by oneDNN with their weights reordered once, at load time.

PyTorch's eager ``Conv2d`` on a CPU hands oneDNN plain (OIHW) weights, which oneDNN reorders into its
blocked layout on every call. With a batch of one face on 5x5 and 2x2 maps that copy costs as much as
the convolution (measured 1.3 ms -> 0.4 ms for a 512-channel bf16 3x3 convolution on 5x5 maps, one
thread).
``PackedConv2d`` reorders once (``torch.ops.mkldnn._reorder_convolution_weight``, the op
``torch.compile``'s freezing uses) and calls oneDNN's convolution with the reordered weights
(``torch.ops.mkldnn._convolution_pointwise``), with a following ReLU fused in: the same kernels,
the same arithmetic. Used by ``fer_demo.fastnet`` (the classifier; MTCNN's small networks measured no
faster with it, interleaved, so the detector keeps plain convolutions).
"""

from __future__ import annotations

import functools

import torch
from torch import nn


@functools.lru_cache(maxsize=None)
def packed_convolution_available(dtype: torch.dtype = torch.float32) -> bool:
    """True when this torch and CPU run oneDNN's convolution with pre-reordered weights (the op Inductor's
    freezing uses: ``torch.ops.mkldnn._reorder_convolution_weight`` + ``_convolution_pointwise``) in
    ``dtype`` (bfloat16 needs a CPU oneDNN runs bf16 on)."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        conv = nn.Conv2d(2, 2, 3, padding=1).to(dtype)
        x = torch.randn(1, 2, 4, 4).to(dtype).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            w = torch.ops.mkldnn._reorder_convolution_weight(conv.weight, [1, 1], [1, 1], [1, 1], 1, [1, 2, 4, 4])
            y = torch.ops.mkldnn._convolution_pointwise(x, w, conv.bias, [1, 1], [1, 1], [1, 1], 1, "none", [], "")
            tol = 1e-5 if dtype == torch.float32 else 5e-2
            return bool(torch.allclose(y.float(), conv(x).float(), atol=tol, rtol=tol))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


class _PackedConvFunction(torch.autograd.Function):
    """``PackedConv2d``'s forward with autograd: the input's gradient is the convolution of the output's
    gradient (masked by the ReLU) with the flipped, transposed kernel, itself pre-reordered."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, layer: PackedConv2d) -> torch.Tensor:  # type: ignore[override]
        y = layer.run(x, layer.packed, layer.bias, layer.padding, layer.relu)
        ctx.layer = layer
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        layer = ctx.layer
        if layer.relu:
            grad = torch.where(y > 0, grad, torch.zeros((), dtype=grad.dtype))
        return layer.run(grad, layer.packed_grad(), None, layer.grad_padding, False), None


class PackedConv2d(nn.Module):
    """A stride-1 ``Conv2d`` (and the ReLU after it) run by oneDNN with its weights reordered once.

    PyTorch's eager convolution reorders the weights into oneDNN's blocked layout on every call; at
    batch 1 on 5x5 and 2x2 maps that copy costs as much as the convolution (measured 1.3 ms -> 0.4 ms
    for a 512-channel bf16 3x3 convolution on 5x5). Here the reorder happens once, at load time
    (``torch.ops.mkldnn._reorder_convolution_weight``, the op ``torch.compile``'s freezing uses), and
    the ReLU is fused into the convolution. Same arithmetic as ``relu(conv(x))`` (same oneDNN kernels).

    Differentiable with respect to its input (not its weights) for a CAM: ``_PackedConvFunction``.

    Args:
        conv: stride 1, dilation 1, groups 1, padding <= kernel - 1 (copied, not modified).
        relu: the ReLU that followed ``conv`` is fused in.
        dtype: weights' and activations' dtype (float32 or bfloat16).
        input_size: (C, H, W) of the input the layer sees (a hint for oneDNN's weight layout).
    """

    def __init__(self, conv: nn.Conv2d, relu: bool, dtype: torch.dtype, input_size: tuple[int, int, int]) -> None:
        super().__init__()
        if not self.supports(conv):
            raise ValueError(f"PackedConv2d needs a stride-1, undilated, ungrouped convolution, got {conv}")
        weight = conv.weight.detach().to(dtype)
        self.register_buffer("weight", weight)
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().to(dtype))
        self.padding = [int(p) for p in conv.padding]
        self.grad_padding = [k - 1 - p for k, p in zip(conv.kernel_size, self.padding)]
        self.relu = bool(relu)
        self.input_size = [1, *input_size]
        self.packed = self.reorder(weight, self.padding, self.input_size)
        self._packed_grad: torch.Tensor | None = None

    @staticmethod
    def supports(conv: nn.Module) -> bool:
        return (isinstance(conv, nn.Conv2d) and tuple(conv.stride) == (1, 1) and tuple(conv.dilation) == (1, 1)
                and conv.groups == 1 and isinstance(conv.padding, tuple)
                and all(0 <= p <= k - 1 for p, k in zip(conv.padding, conv.kernel_size))
                and conv.padding_mode == "zeros")

    @staticmethod
    def reorder(weight: torch.Tensor, padding: list[int], input_size: list[int]) -> torch.Tensor:
        return torch.ops.mkldnn._reorder_convolution_weight(weight, padding, [1, 1], [1, 1], 1, input_size)

    def packed_grad(self) -> torch.Tensor:
        """The reordered kernel of the input's gradient (built on first use: only a CAM needs it)."""
        if self._packed_grad is None:
            flipped = self.weight.transpose(0, 1).flip(2, 3).contiguous()
            size = [1, self.weight.shape[0], *self.input_size[2:]]
            self._packed_grad = self.reorder(flipped, self.grad_padding, size)
        return self._packed_grad

    @staticmethod
    def run(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None, padding: list[int],
            relu: bool) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        return torch.ops.mkldnn._convolution_pointwise(x, packed, bias, padding, [1, 1], [1, 1], 1,
                                                       "relu" if relu else "none", [], "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.weight.dtype)
        if torch.is_grad_enabled() and x.requires_grad:
            return _PackedConvFunction.apply(x, self)
        return self.run(x, self.packed, self.bias, self.padding, self.relu)

    def extra_repr(self) -> str:
        w = self.weight
        return (f"{w.shape[1]}, {w.shape[0]}, kernel_size={tuple(w.shape[2:])}, padding={tuple(self.padding)}, "
                f"relu={self.relu}, dtype={w.dtype}")


def pack_convolutions(layers: list[nn.Module], dtype: torch.dtype, input_size: tuple[int, int, int],
                      differentiable: bool = False) -> list[nn.Module]:
    """Every supported Conv2d (+ the ReLU after it) of ``layers`` -> ``PackedConv2d``; others kept (cast
    to ``dtype``). ``input_size``: (C, H, W) of the first layer's input, followed through the layers to
    size each. ``differentiable``: also reorder the kernels of the input's gradient now (for a CAM)."""
    out: list[nn.Module] = []
    x = torch.zeros(1, *input_size, dtype=dtype)
    i = 0
    with torch.no_grad():
        while i < len(layers):
            layer = layers[i]
            if PackedConv2d.supports(layer):
                relu = i + 1 < len(layers) and isinstance(layers[i + 1], nn.ReLU)
                packed = PackedConv2d(layer, relu, dtype, tuple(x.shape[1:]))
                if differentiable:
                    packed.packed_grad()
                x = packed(x)
                out.append(packed)
                i += 2 if relu else 1
                continue
            layer.to(dtype)
            x = layer(x)
            out.append(layer)
            i += 1
    return out
