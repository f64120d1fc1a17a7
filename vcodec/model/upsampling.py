"""Learned 2x upsampling: one 8x8 transposed-convolution kernel, initialised to bicubic (-1, 9, 9, -1)/16.

Grids are brought to full resolution level by level: the stack of coarser grids is upsampled, cropped to
the next grid's size and joined with it, so every grid passes through the same kernel once per level.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# 1-D taps of a 2x transposed convolution: even outputs copy the input (tap 16/16), odd outputs take the
# bicubic half-sample interpolation (-1, 9, 9, -1)/16. Tap 7 is zero padding to the kernel size 8.
BICUBIC_TAPS: tuple[float, ...] = (-1 / 16, 0.0, 9 / 16, 1.0, 9 / 16, 0.0, -1 / 16, 0.0)
_BORDER = 2  # replicate padding of the input, in samples
_CROP = 7    # first output sample aligned with input sample 0 (border 2 * stride 2 + centre tap 3)


class Upsampling(nn.Module):
    def __init__(self, kernel_size: int = 8) -> None:
        super().__init__()
        taps = torch.tensor(BICUBIC_TAPS)
        self.kernel = nn.Parameter(torch.outer(taps, taps).view(1, 1, kernel_size, kernel_size).clone())

    def upsample2x(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(C, 1, h, w) -> (C, 1, height, width) with height <= 2h, width <= 2w; channels as a batch."""
        padded = F.pad(x, (_BORDER,) * 4, mode="replicate")
        up = F.conv_transpose2d(padded, self.kernel, stride=2)
        return up[:, :, _CROP : _CROP + height, _CROP : _CROP + width]

    def forward(self, grids: list[torch.Tensor]) -> torch.Tensor:
        """Grids (1, 1, h_l, w_l), finest first -> (1, L, H, W) all at full resolution."""
        stack = grids[-1].view(1, 1, *grids[-1].shape[-2:])
        for grid in reversed(grids[:-1]):
            height, width = grid.shape[-2:]
            stack = self.upsample2x(stack, height, width)
            stack = torch.cat([stack, grid.view(1, 1, height, width)], dim=0)
        return stack.view(1, len(grids), *stack.shape[-2:])

    def macs_per_pixel(self, levels: int) -> float:
        """Each transposed-conv output sample costs kernel^2 / 4 MACs; level l carries L-1-l channels."""
        per_sample = self.kernel.numel() / 4
        return sum(per_sample * (levels - 1 - level) / 4**level for level in range(levels - 1))
