"""Learned 2x upsampling: one 8x8 transposed-convolution kernel, initialised to bicubic (-1, 9, 9, -1)/16.

Grids are brought to full resolution level by level: the stack of coarser grids is upsampled, cropped to
the next grid's size and joined with it, so every grid passes through the same kernel once per level.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vcodec.model import _training_kernels
from vcodec.model.pointwise_mlp import in_threads, split_range, trains_compiled

# 1-D taps of a 2x transposed convolution: even outputs copy the input (tap 16/16), odd outputs take the
# bicubic half-sample interpolation (-1, 9, 9, -1)/16. Tap 7 is zero padding to the kernel size 8.
BICUBIC_TAPS: tuple[float, ...] = (-1 / 16, 0.0, 9 / 16, 1.0, 9 / 16, 0.0, -1 / 16, 0.0)
BORDER = 2  # replicate padding of the input, in samples
CROP = 7    # first output sample aligned with input sample 0 (border 2 * stride 2 + centre tap 3)


class Upsampling(nn.Module):
    def __init__(self, kernel_size: int = 8) -> None:
        super().__init__()
        taps = torch.tensor(BICUBIC_TAPS)
        self.kernel = nn.Parameter(torch.outer(taps, taps).view(1, 1, kernel_size, kernel_size).clone())

    def upsample2x(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(1, C, h, w) -> (1, C, height, width) with height <= 2h, width <= 2w, every channel by the kernel.

        Training on the CPU compiled (`_training_kernels.c`: each output row's taps as vector multiply-adds
        over the padded input's rows, and their gradients). Elsewhere (CUDA, inference) one depthwise
        transposed convolution in channels-last layout (on one CPU core 1.8x faster, forward and backward, than the channels as a
        batch of 1-channel images, whose im2col/col2im path dominated).
        """
        if trains_compiled(x, self.kernel):
            return _CompiledUpsampling.apply(x, self.kernel, height, width)
        channels = x.shape[1]
        padded = F.pad(x, (BORDER,) * 4, mode="replicate").contiguous(memory_format=torch.channels_last)
        kernel = self.kernel.expand(channels, 1, *self.kernel.shape[-2:])
        up = F.conv_transpose2d(padded, kernel, stride=2, groups=channels)
        return up[:, :, CROP : CROP + height, CROP : CROP + width]

    def forward(self, grids: list[torch.Tensor]) -> torch.Tensor:
        """Grids (1, 1, h_l, w_l), finest first -> (1, L, H, W) all at full resolution, coarsest first."""
        stack = grids[-1]
        for grid in reversed(grids[:-1]):
            height, width = grid.shape[-2:]
            stack = torch.cat([self.upsample2x(stack, height, width), grid], dim=1)
        return stack


class _CompiledUpsampling(torch.autograd.Function):
    """Upsampling.upsample2x on CPU float32: (1, C, h, w) and the 8x8 kernel -> (1, C, height, width)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, kernel: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = x.detach().contiguous()
        _, channels, rows, cols = x.shape
        kernel_np = kernel.detach().contiguous().numpy()
        y = torch.empty(1, channels, height, width)
        x_np, y_np = x.numpy(), y.numpy()
        in_threads(lambda c0, c1: _training_kernels.upsample(x_np, channels, rows, cols, kernel_np, y_np, height,
                                                             width, c0, c1), split_range(channels, 1))
        ctx.save_for_backward(x, kernel)
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        x, kernel = ctx.saved_tensors
        _, channels, rows, cols = x.shape
        height, width = grad_y.shape[-2:]
        grad_x = torch.empty_like(x)
        x_np, grad_x_np = x.numpy(), grad_x.numpy()
        kernel_np = kernel.detach().contiguous().numpy()
        grad_y_np = grad_y.detach().contiguous().numpy()

        def work(c0: int, c1: int) -> np.ndarray:
            grad_kernel = np.empty(64)
            _training_kernels.upsample_backward(x_np, channels, rows, cols, kernel_np, grad_y_np, height, width, c0, c1,
                                                grad_x_np, grad_kernel)
            return grad_kernel

        parts = in_threads(work, split_range(channels, 1))
        grad_kernel = parts[0]
        for part in parts[1:]:  # in channel order: the same sum on every call
            grad_kernel = grad_kernel + part
        return grad_x, torch.from_numpy(grad_kernel).float().view_as(kernel), None, None
