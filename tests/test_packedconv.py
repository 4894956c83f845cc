"""fer_demo.packedconv: oneDNN convolutions with weights reordered once compute relu(conv(x)) and its gradient."""

from __future__ import annotations

import pytest
import torch

from fer_demo.packedconv import PackedConv2d, packed_convolution_available

needs_packed = pytest.mark.skipif(not packed_convolution_available(),
                                  reason="this torch has no oneDNN packed convolution")


@needs_packed
@pytest.mark.parametrize("kernel, padding, relu", [(3, 1, True), (3, 1, False), (2, 0, True), (3, 0, True)])
def test_packed_conv_is_relu_conv_with_its_gradient(kernel, padding, relu):
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(8, 16, kernel, padding=padding)
    x = torch.randn(2, 8, 6, 5)
    packed = PackedConv2d(conv, relu, torch.float32, (8, 6, 5))
    x_ref, x_packed = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y_ref = conv(x_ref)
    y_ref = torch.relu(y_ref) if relu else y_ref
    y = packed(x_packed)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y_ref)
    y_ref.backward(g)
    y.backward(g)
    torch.testing.assert_close(x_packed.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    # a different batch size and memory layout than the one the weights were reordered for
    x3 = torch.randn(3, 8, 6, 5).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref3 = conv(x3)
        torch.testing.assert_close(packed(x3), torch.relu(ref3) if relu else ref3, rtol=1e-5, atol=1e-5)


def test_packed_conv_refuses_strides():
    assert not PackedConv2d.supports(torch.nn.Conv2d(3, 3, 3, stride=2))
    assert not PackedConv2d.supports(torch.nn.Conv2d(3, 3, 3, padding=3))
    assert not PackedConv2d.supports(torch.nn.Linear(3, 3))
    with pytest.raises(ValueError, match="stride-1"):
        PackedConv2d(torch.nn.Conv2d(3, 3, 3, stride=2), True, torch.float32, (3, 8, 8))
