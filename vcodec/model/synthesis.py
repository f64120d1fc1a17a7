"""Synthesis: 1x1 layers on the upsampled latents, then 3x3 residual convolutions on the 3 output planes.

The output is Y, U, V at luma resolution in [0, 1]; the 4:2:0 chroma is a 2x2 downscale of U and V.
The residual blocks are pre-activated, x + conv(relu(x)): the ReLU acts only on the branch, never on the
planes themselves. (With relu(x + conv(x)) a plane driven below zero early in training is cut to zero and
gets no gradient: on a cat photo U died this way and stayed near 30 dB at every rate.)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from vcodec.model import _training_kernels
from vcodec.model.pointwise_mlp import pointwise_mlp, trains_compiled
from vcodec.shapes import OUTPUT_PLANES
# Without gradients the 1x1 layers run on this many pixels at a time, so the widest hidden activation
# (40 x 65536 floats, 10 MB) is not the whole frame's: the whole synthesis of a 1080p frame, 2 threads
# (OMP_WAIT_POLICY=PASSIVE), idle machine: 97-103 ms against 144-159 ms at 8192 pixels (the earlier
# value) and 0.32 s for the frame at once; with the other core busy 135-145 ms either way. Bit-identical
# at any chunk size (tested), since every pixel's column is computed alone.
_INFERENCE_CHUNK = 65536


class Synthesis(nn.Module):
    def __init__(self, in_channels: int, hidden: tuple[int, ...], residual: int, preactivated: bool = True) -> None:
        super().__init__()
        self.preactivated = preactivated  # False only to decode format version 1: relu(x + conv(x))
        widths = [in_channels, *hidden, OUTPUT_PLANES]
        self.pointwise = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.residual = nn.ModuleList(nn.Conv2d(OUTPUT_PLANES, OUTPUT_PLANES, 3) for _ in range(residual))
        for conv in self.residual:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        with torch.no_grad():
            self.pointwise[-1].bias.fill_(0.5)

    def _pointwise(self, x: torch.Tensor) -> torch.Tensor:
        """(C, N) -> (3, N), channels first."""
        return pointwise_mlp(x, list(self.pointwise), (False,) * len(self.pointwise))

    def forward(self, upsampled: torch.Tensor, recompute_chunk: int = 0) -> torch.Tensor:
        """(1, L, H, W) -> (1, 3, H, W).

        recompute_chunk > 0 (training only): the 1x1 layers run on that many pixels at a time, their hidden
        activations recomputed in the backward pass instead of kept (torch.utils.checkpoint); the widest
        (e.g. 40 floats per pixel) is the second largest part of a training step's memory. Same values
        and gradients: every pixel's column is computed alone either way.
        """
        _, channels, height, width = upsampled.shape
        x = upsampled.reshape(channels, height * width)
        if torch.is_grad_enabled() and 0 < recompute_chunk < height * width:
            x = torch.cat([checkpoint(self._pointwise, part, use_reentrant=False)
                           for part in x.split(recompute_chunk, dim=1)], dim=1)
        elif torch.is_grad_enabled() or height * width <= _INFERENCE_CHUNK:
            x = self._pointwise(x)
        else:
            x = torch.cat([self._pointwise(part) for part in x.split(_INFERENCE_CHUNK, dim=1)], dim=1)
        x = x.reshape(1, OUTPUT_PLANES, height, width)
        last = len(self.residual) - 1
        for index, conv in enumerate(self.residual):
            if self.preactivated and trains_compiled(x, conv.weight):
                x = _CompiledResidual.apply(x, conv.weight, conv.bias, index > 0)
                continue
            branch = x if index == 0 or not self.preactivated else torch.relu(x)
            # Channels-last: 4x faster forward + backward on one core than the 3-channel NCHW path.
            padded = F.pad(branch, (1, 1, 1, 1), mode="replicate").contiguous(memory_format=torch.channels_last)
            x = x + conv(padded)
            if not self.preactivated and index < last:
                x = torch.relu(x)
        return x


def to_420(planes: torch.Tensor, chroma_downscale: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 3, H, W) -> luma (1, 1, H, W) and chroma (1, 2, H/2, W/2) by 2x2 mean or nearest sample."""
    luma = planes[:, :1]
    chroma = planes[:, 1:]
    if chroma_downscale == "mean":
        return luma, F.avg_pool2d(chroma, 2)
    return luma, chroma[:, :, ::2, ::2]


class _CompiledResidual(torch.autograd.Function):
    """One pre-activated residual block on CPU float32 planes (1, P, H, W): x + bias + conv3x3(branch), the
    branch x or relu(x), replicate-padded (`_training_kernels.c`)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, relu: bool) -> torch.Tensor:
        x = x.detach().contiguous()
        _, planes, height, width = x.shape
        y = torch.empty_like(x)
        weight_np = weight.detach().contiguous().numpy()
        _training_kernels.residual3x3(x.numpy(), planes, height, width, relu, weight_np,
                                      bias.detach().contiguous().numpy(), y.numpy())
        ctx.save_for_backward(x, weight)
        ctx.relu = relu
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        x, weight = ctx.saved_tensors
        _, planes, height, width = x.shape
        grad_x = torch.empty_like(x)
        grad_weight, grad_bias = np.empty(weight.numel()), np.empty(planes)
        _training_kernels.residual3x3_backward(x.numpy(), planes, height, width, ctx.relu,
                                               weight.detach().contiguous().numpy(),
                                               grad_y.detach().contiguous().numpy(), grad_x.numpy(), grad_weight,
                                               grad_bias)
        return (grad_x, torch.from_numpy(grad_weight).float().view_as(weight),
                torch.from_numpy(grad_bias).float(), None)
