"""The compiled training kernels (vcodec/model/_training_kernels.c) against float64 autograd of the same
functions: the pointwise MLP, the causal contexts, the upsampling."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch
from torch import nn

from vcodec.model import _training_kernels
from vcodec.model.pointwise_mlp import pointwise_mlp

SHAPES = [
    ((24, 24, 24, 2), (False, True, False)),  # main's ARM: a residual hidden layer
    ((16, 16, 16, 2), (False, True, False)),
    ((7, 40, 3), (False, False)),             # main's synthesis 1x1 layers
    ((5, 3), (False,)),                       # one linear layer
]


def reference(x: torch.Tensor, layers: list[nn.Linear], residual: tuple[bool, ...], grad_y: torch.Tensor
              ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Output and gradients (input, then each layer's weight and bias) in float64 autograd."""
    x64 = x.detach().double().requires_grad_()
    params = [p.detach().double().requires_grad_() for layer in layers for p in (layer.weight, layer.bias)]
    h = x64
    for index in range(len(layers)):
        z = params[2 * index] @ h + params[2 * index + 1][:, None]
        if index < len(layers) - 1:
            z = z.relu()
            z = h + z if residual[index] else z
        h = z
    (h * grad_y.double()).sum().backward()
    return h.detach(), [x64.grad, *(p.grad for p in params)]


@pytest.mark.parametrize("widths, residual", SHAPES)
@pytest.mark.parametrize("columns", [1, 63, 64, 65, 4097, 9000])
@pytest.mark.parametrize("threads", [1, 3])
def test_forward_and_gradients_match_float64(widths, residual, columns, threads):
    torch.manual_seed(columns)
    layers = [nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])]
    x = torch.randn(widths[0], columns, requires_grad=True)
    grad_y = torch.randn(widths[-1], columns)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        y = pointwise_mlp(x, layers, residual)
        (y * grad_y).sum().backward()
    finally:
        torch.set_num_threads(previous)
    expected_y, expected_grads = reference(x, layers, residual, grad_y)
    grads = [x.grad, *(p.grad for layer in layers for p in (layer.weight, layer.bias))]
    assert torch.allclose(y.double(), expected_y, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, expected_grads):
        assert got.dtype == torch.float32
        assert torch.allclose(got.double(), want, rtol=1e-4, atol=1e-4 * float(want.abs().max()) + 1e-6)


def test_same_result_on_every_call_and_thread_count_independent_output():
    torch.manual_seed(1)
    layers = [nn.Linear(24, 24), nn.Linear(24, 24), nn.Linear(24, 2)]
    x = torch.randn(24, 20000)
    outputs = []
    for threads in (1, 2, 1):
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            outputs.append(pointwise_mlp(x, layers, (False, True, False)).detach())
        finally:
            torch.set_num_threads(previous)
    # each column is computed alone: the split among threads changes nothing
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[0], outputs[2])


def test_torch_path_elsewhere_gives_the_same_network():
    """float64 (as CUDA would) takes torch's matrix products: the same function of the input."""
    torch.manual_seed(2)
    layers = [nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 2)]
    x = torch.randn(16, 500)
    compiled = pointwise_mlp(x, layers, (False, True, False)).detach()
    plain = pointwise_mlp(x.double(), [layer.double() for layer in layers], (False, True, False)).detach()
    assert torch.allclose(compiled.double(), plain, rtol=1e-5, atol=1e-5)


def test_kernels_refuse_inconsistent_buffers():
    widths = np.array([4, 3], dtype=np.int32)
    flags = np.zeros(1, dtype=np.uint8)
    weights, biases = np.zeros(12, dtype=np.float32), np.zeros(3, dtype=np.float32)
    x, y = np.zeros((4, 10), dtype=np.float32), np.zeros((3, 10), dtype=np.float32)
    with pytest.raises(ValueError, match="column range"):
        _training_kernels.forward(x, 10, 0, 11, widths, flags, weights, biases, y)
    with pytest.raises(ValueError, match="weights or biases"):
        _training_kernels.forward(x, 10, 0, 10, widths, flags, weights[:11], biases, y)
    with pytest.raises(ValueError, match="x or y"):
        _training_kernels.forward(x, 9, 0, 9, widths, flags, weights, biases, y)
    with pytest.raises(ValueError, match="residual"):
        _training_kernels.forward(x, 10, 0, 10, widths, np.ones(1, dtype=np.uint8), weights, biases, y)
    with pytest.raises(ValueError, match="widths are 1 to 64"):
        _training_kernels.forward(x, 10, 0, 10, np.array([4, 65], dtype=np.int32), flags, weights, biases, y)
    grad_w, grad_b = np.zeros(12), np.zeros(3)
    with pytest.raises(ValueError, match="disagrees"):
        _training_kernels.backward(x, y, 10, 0, 10, widths, flags, weights, biases, x.copy(), grad_w[:5], grad_b)


@pytest.mark.parametrize("layout, context", [("raster", 24), ("priority", 16), ("priority", 8)])
def test_compiled_contexts_match_shifted_views(layout, context):
    from vcodec.shapes import context_offsets, offsets_radius
    from vcodec.model.pointwise_mlp import causal_contexts

    offsets = tuple(context_offsets(context, layout))
    radius = offsets_radius(list(offsets))
    torch.manual_seed(context)
    padded = torch.randn(9 + radius, 13 + 2 * radius, requires_grad=True)
    grad = torch.randn(len(offsets), 9 * 13)
    contexts = causal_contexts(padded, offsets, radius)
    contexts.backward(grad)
    compiled_grad = padded.grad.clone()
    padded.grad = None
    # torch's path (what CUDA runs) as the reference
    reference = causal_contexts(padded.double(), offsets, radius)
    reference.backward(grad.double())
    assert torch.equal(contexts.double(), reference.detach())
    assert torch.allclose(compiled_grad.double(), padded.grad.double(), atol=1e-6)
    for dy, dx in offsets:  # spot check: column (y, x) reads padded[y + r + dy, x + r + dx]
        i = offsets.index((dy, dx))
        assert contexts[i, 2 * 13 + 5] == padded[2 + radius + dy, 5 + radius + dx]


def test_contexts_refuse_offsets_outside_the_padding():
    from vcodec.model.pointwise_mlp import _training_kernels as kernels

    padded = np.zeros((5 + 2, 4 + 4), dtype=np.float32)
    out = np.zeros((1, 20), dtype=np.float32)
    with pytest.raises(ValueError, match="outside the padding"):
        kernels.gather_contexts(padded, 5, 4, 2, np.array([[1, 0]], dtype=np.int64), out)
    with pytest.raises(ValueError, match="disagree in size"):
        kernels.gather_contexts(padded, 6, 4, 2, np.array([[0, -1]], dtype=np.int64), out)


@pytest.mark.parametrize("channels, rows, cols, height, width", [
    (1, 5, 7, 10, 14), (3, 5, 7, 9, 13), (6, 30, 52, 60, 104), (2, 1, 1, 2, 1), (4, 8, 9, 15, 17)])
@pytest.mark.parametrize("threads", [1, 2])
def test_compiled_upsampling_matches_the_transposed_convolution(channels, rows, cols, height, width, threads):
    """Against torch's depthwise transposed convolution (the path CUDA runs) in float64, odd crops included."""
    from vcodec.model.upsampling import Upsampling

    torch.manual_seed(channels * 100 + rows)
    compiled = Upsampling(8)
    with torch.no_grad():
        compiled.kernel.add_(torch.randn_like(compiled.kernel) * 0.1)
    plain = Upsampling(8).double()
    with torch.no_grad():
        plain.kernel.copy_(compiled.kernel.double())
    x = torch.randn(1, channels, rows, cols, requires_grad=True)
    grad = torch.randn(1, channels, height, width)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        y = compiled.upsample2x(x, height, width)
        y.backward(grad)
    finally:
        torch.set_num_threads(previous)
    x64 = x.detach().double().requires_grad_()
    y64 = plain.upsample2x(x64, height, width)
    y64.backward(grad.double())
    assert y.shape == (1, channels, height, width)
    assert torch.allclose(y.double(), y64.detach(), atol=1e-5)
    assert torch.allclose(x.grad.double(), x64.grad, atol=1e-5)
    assert torch.allclose(compiled.kernel.grad.double(), plain.kernel.grad, rtol=1e-5, atol=1e-4)


def test_upsampling_refuses_inconsistent_sizes():
    x = np.zeros((2, 4, 5), dtype=np.float32)
    kernel = np.zeros((8, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="disagree"):
        _training_kernels.upsample(x, 2, 4, 5, kernel, np.zeros((2, 9, 10), dtype=np.float32), 9, 10, 0, 2)
    with pytest.raises(ValueError, match="disagree"):
        _training_kernels.upsample(x, 2, 4, 5, kernel, np.zeros((2, 8, 10), dtype=np.float32), 8, 10, 0, 3)


@pytest.mark.parametrize("height, width", [(1, 1), (2, 3), (7, 13), (24, 40)])
def test_compiled_residual_blocks_match_torch(height, width):
    """The synthesis' two pre-activated residual blocks (the second with the ReLU on its branch), compiled,
    against torch's convolutions in float64 (what inference and CUDA run)."""
    from vcodec.model.synthesis import Synthesis

    torch.manual_seed(height * 31 + width)
    synthesis = Synthesis(5, (6,), 2)
    with torch.no_grad():
        for conv in synthesis.residual:
            conv.weight.normal_(0, 0.3)
            conv.bias.normal_(0, 0.1)
    reference = Synthesis(5, (6,), 2).double()
    reference.load_state_dict({k: v.double() for k, v in synthesis.state_dict().items()})
    x = torch.randn(1, 5, height, width, requires_grad=True)
    grad = torch.randn(1, 3, height, width)
    synthesis(x).backward(grad)
    x64 = x.detach().double().requires_grad_()
    with mock.patch("vcodec.model.synthesis.trains_compiled", lambda *tensors: False):
        reference(x64).backward(grad.double())
    assert torch.allclose(x.grad.double(), x64.grad, atol=1e-5)
    for (name, got), want in zip(synthesis.named_parameters(), reference.parameters()):
        assert torch.allclose(got.grad.double(), want.grad, rtol=1e-5, atol=1e-4), name
    with torch.no_grad():  # and the outputs: the compiled forward (under gradients) against torch's
        expected = reference(x64)
    assert torch.allclose(synthesis(x).double(), expected, atol=1e-5)


def test_inference_keeps_torch_operations():
    """Without gradients (decoding formats 1-5, scoring) nothing compiled runs: earlier formats decode
    exactly as before."""
    from vcodec.model.pointwise_mlp import trains_compiled

    x = torch.zeros(2, 3)
    assert trains_compiled(x)
    with torch.no_grad():
        assert not trains_compiled(x)
    assert not trains_compiled(x.double())
