"""Training's pointwise MLPs: the ARM and the synthesis' 1x1 layers, on channels-first (C, N) matrices,
and the ARM's causal contexts that feed it.

Both are hidden layers relu(W x + b) (residual, x + relu(W x + b), where a flag says so) and a linear
output layer. Training on the CPU runs the forward and backward passes compiled (`_training_kernels.c`): a
chunk of columns goes through every layer in the cache and the backward pass recomputes its activations,
where torch would write and re-read every layer's (C, N) activations (measured in docs/codec.md).
Elsewhere (CUDA, and everything without gradients) torch's matrix products run it. No bitstream depends on
these float sums.
"""

from __future__ import annotations


import numpy as np
import torch
from torch import nn

from vcodec.model import _training_kernels
from vcodec.thread_pool import shared_pool

MIN_COLUMNS_PER_THREAD = 4096  # below this a thread's start costs more than its share of the work


def trains_compiled(*tensors: torch.Tensor) -> bool:
    """Whether a training step takes the compiled kernels: float32 on the CPU, gradients on. Without
    gradients (decoding frame formats 1-5, whose picture is float, and the encoder's scoring) torch's own
    operations run, so that earlier formats decode exactly as they did."""
    return torch.is_grad_enabled() and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def pointwise_mlp(x: torch.Tensor, layers: list[nn.Linear], residual: tuple[bool, ...]) -> torch.Tensor:
    """(C, N) -> (outputs, N): every layer but the last relu(W x + b) (plus x where residual), the last
    W x + b."""
    if trains_compiled(x, *(layer.weight for layer in layers)):
        widths = (layers[0].in_features, *(layer.out_features for layer in layers))
        parameters = [t for layer in layers for t in (layer.weight, layer.bias)]
        return _CompiledMlp.apply(x, widths, residual, *parameters)
    last = len(layers) - 1
    for index, layer in enumerate(layers):
        y = torch.addmm(layer.bias[:, None], layer.weight, x)
        if index < last:
            y = y.relu_()  # in place: addmm's backward does not need its output
            y = x + y if residual[index] else y
        x = y
    return x



def split_range(n: int, minimum: int) -> list[tuple[int, int]]:
    """[0, n) split among torch's intra-op thread count, each part at least `minimum` long (the kernels
    release the GIL, so threads run them at once)."""
    threads = max(1, min(torch.get_num_threads(), n // max(1, minimum)))
    return [(n * t // threads, n * (t + 1) // threads) for t in range(threads)]


def in_threads(work, ranges: list[tuple[int, int]]) -> list:
    """[work(lo, hi) for each range], the ranges in threads of a pool; results in range order."""
    if len(ranges) == 1:
        return [work(*ranges[0])]
    return list(shared_pool(len(ranges)).map(lambda bounds: work(*bounds), ranges))


class _CompiledMlp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, widths: tuple[int, ...], residual: tuple[bool, ...], *parameters: torch.Tensor
                ) -> torch.Tensor:
        x = x.detach().contiguous()
        weights = torch.cat([p.detach().reshape(-1) for p in parameters[0::2]]).numpy()
        biases = torch.cat([p.detach().reshape(-1) for p in parameters[1::2]]).numpy()
        width_array = np.array(widths, dtype=np.int32)
        flags = np.array(residual, dtype=np.uint8)
        n = x.shape[1]
        y = torch.empty(widths[-1], n)
        x_np, y_np = x.numpy(), y.numpy()
        in_threads(lambda lo, hi: _training_kernels.forward(x_np, n, lo, hi, width_array, flags, weights, biases, y_np),
             split_range(n, MIN_COLUMNS_PER_THREAD))
        ctx.save_for_backward(x)  # the weights travel as the kernels' arrays
        ctx.kernel_arguments = (width_array, flags, weights, biases)
        ctx.shapes = [p.shape for p in parameters]
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        (x,) = ctx.saved_tensors
        width_array, flags, weights, biases = ctx.kernel_arguments
        n = x.shape[1]
        grad_y_np = grad_y.detach().contiguous().numpy()
        grad_x = torch.empty_like(x)
        x_np, grad_x_np = x.numpy(), grad_x.numpy()

        def work(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
            grad_w, grad_b = np.empty(len(weights)), np.empty(len(biases))
            _training_kernels.backward(x_np, grad_y_np, n, lo, hi, width_array, flags, weights, biases, grad_x_np,
                                  grad_w, grad_b)
            return grad_w, grad_b

        parts = in_threads(work, split_range(n, MIN_COLUMNS_PER_THREAD))
        grad_w, grad_b = parts[0]
        for part_w, part_b in parts[1:]:  # in column order: the same sums on every call
            grad_w, grad_b = grad_w + part_w, grad_b + part_b
        grad_w, grad_b = torch.from_numpy(grad_w), torch.from_numpy(grad_b)
        grads: list[torch.Tensor] = []
        weight_at = bias_at = 0
        for weight_shape, bias_shape in zip(ctx.shapes[0::2], ctx.shapes[1::2]):
            size = weight_shape.numel()
            grads.append(grad_w[weight_at:weight_at + size].view(weight_shape).float())
            grads.append(grad_b[bias_at:bias_at + bias_shape.numel()].view(bias_shape).float())
            weight_at += size
            bias_at += bias_shape.numel()
        return (grad_x, None, None, *grads)


def causal_contexts(padded: torch.Tensor, offsets: tuple[tuple[int, int], ...], radius: int) -> torch.Tensor:
    """A grid padded by r above, left and right ((rows + r, w + 2r)) -> the contexts of its rows, (C, rows * w):
    row i holds every position's neighbour at offsets[i] = (dy, dx).

    On the CPU compiled (a copy per context row, and its gradient added back row by row), where torch's
    stack of shifted views spends its backward pass allocating a zeroed grid per view."""
    if trains_compiled(padded):
        return _CompiledContexts.apply(padded, offsets, radius)
    rows, width = padded.shape[0] - radius, padded.shape[1] - 2 * radius
    shifted = [padded[radius + dy : radius + dy + rows, radius + dx : radius + dx + width] for dy, dx in offsets]
    return torch.stack(shifted).view(len(offsets), rows * width)


class _CompiledContexts(torch.autograd.Function):
    @staticmethod
    def forward(ctx, padded: torch.Tensor, offsets: tuple[tuple[int, int], ...], radius: int) -> torch.Tensor:
        padded = padded.detach().contiguous()
        rows, width = padded.shape[0] - radius, padded.shape[1] - 2 * radius
        offset_array = np.array(offsets, dtype=np.int64).reshape(-1, 2)
        contexts = torch.empty(len(offsets), rows * width)
        _training_kernels.gather_contexts(padded.numpy(), rows, width, radius, offset_array, contexts.numpy())
        ctx.geometry = (padded.shape, rows, width, radius, offset_array)
        return contexts

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        shape, rows, width, radius, offset_array = ctx.geometry
        grad_padded = torch.empty(shape)
        _training_kernels.scatter_contexts(grad.detach().contiguous().numpy(), rows, width, radius, offset_array,
                                      grad_padded.numpy())
        return grad_padded, None, None
