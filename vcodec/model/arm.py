"""Autoregressive entropy model (ARM): an MLP on causal neighbours predicting a Laplace per latent.

Training uses this float module. Coding uses the integer twin in `vcodec.entropy.fixed_point`, which
runs the same layers on quantised weights so that encoder and decoder agree bit for bit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from vcodec.format import LOG2_SCALE_MAX, LOG2_SCALE_MIN
from vcodec.model.pointwise_mlp import causal_contexts, pointwise_mlp
from vcodec.shapes import arm_layer_shapes, arm_residual_layers, context_offsets, offsets_radius


class Arm(nn.Module):
    """Layers: context -> hidden[0] (ReLU), hidden[i] -> hidden[i+1] (ReLU, residual when widths match),
    -> (mean, log2 scale). Shapes and residual connections follow vcodec.shapes, as the integer ARM's do."""

    def __init__(self, context: int, hidden: tuple[int, ...], layout: str = "priority") -> None:
        super().__init__()
        self.offsets = context_offsets(context, layout)
        self.radius = offsets_radius(self.offsets)
        self.layer_shapes = arm_layer_shapes(context, hidden)
        self.residual_layers = arm_residual_layers(self.layer_shapes)
        *hidden_shapes, (last_width, outputs) = self.layer_shapes
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in hidden_shapes)
        self.output = nn.Linear(last_width, outputs)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, grids: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log2-scale for every position of every grid, flattened grid after grid (raster order).

        grids: tensors of shape (1, 1, h, w) holding quantised (or noisy) latents.
        """
        return self.predict(torch.cat([self.context(grid) for grid in grids], dim=1))

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Contexts (C, N) -> mean (N,) and log2 scale (N,)."""
        out = pointwise_mlp(x, [*self.layers, self.output], self.residual_layers)
        return out[0], out[1]

    def context(self, grid: torch.Tensor) -> torch.Tensor:
        """(1, 1, h, w) -> (C, h*w): the causal neighbours of every position, zeros outside the grid."""
        r = self.radius
        return self._gather(F.pad(grid, (r, r, r, 0))[0, 0])

    def _gather(self, padded: torch.Tensor) -> torch.Tensor:
        """Rows of a grid padded by r above, left and right ((rows + r, w + 2r)) -> their contexts (C, rows*w).

        Only the causal taps: half the time of unfold over the (r+1) x (2r+1) window, whose non-causal taps
        would be computed only to be multiplied by zero.
        """
        return causal_contexts(padded, tuple(self.offsets), self.radius)

    def _band_bits(self, padded_band: torch.Tensor) -> torch.Tensor:
        """Bits of the rows of one padded band ((rows + r, w + 2r), the r rows above included)."""
        r = self.radius
        mean, log2_scale = self.predict(self._gather(padded_band))
        values = padded_band[r:, r : padded_band.shape[1] - r].flatten()
        return laplace_bits(values, mean, log2_scale).sum()

    def bits(self, grids: list[torch.Tensor], band_positions: int = 0) -> torch.Tensor:
        """The grids' total rate in bits under this model.

        band_positions > 0: in bands of rows of about that many positions, each band's contexts and
        activations recomputed in the backward pass instead of kept (torch.utils.checkpoint): the ARM's
        activations over every position are the largest part of a training step's memory (about 0.5 kB
        per pixel). Same value up to the order of the float summation, same gradients.
        """
        if band_positions <= 0:
            mean, log2_scale = self(grids)
            return laplace_bits(torch.cat([grid.flatten() for grid in grids]), mean, log2_scale).sum()
        r = self.radius
        total = grids[0].new_zeros(())
        for grid in grids:
            padded = F.pad(grid, (r, r, r, 0))[0, 0]
            height, width = grid.shape[-2:]
            rows = max(1, band_positions // width)
            for top in range(0, height, rows):
                band = padded[top : min(height, top + rows) + r]
                if torch.is_grad_enabled():
                    total = total + checkpoint(self._band_bits, band, use_reentrant=False)
                else:
                    total = total + self._band_bits(band)
        return total


def laplace_bits(values: torch.Tensor, mean: torch.Tensor, log2_scale: torch.Tensor) -> torch.Tensor:
    """-log2 P(value) for the Laplace integrated over [value - 1/2, value + 1/2], computed stably.

    Both branches are evaluated on clamped inputs so neither produces inf (and no NaN gradients).
    """
    scale = torch.exp2(log2_scale.clamp(LOG2_SCALE_MIN, LOG2_SCALE_MAX))
    distance = (values - mean).abs()
    tail = distance.clamp(min=0.5)
    log_p_tail = -(tail - 0.5) / scale + math.log(0.5) + torch.log(-torch.expm1(-1.0 / scale))
    centre = distance.clamp(max=0.5)
    p_centre = 1.0 - 0.5 * torch.exp(-(0.5 - centre) / scale) - 0.5 * torch.exp(-(centre + 0.5) / scale)
    log_p = torch.where(distance >= 0.5, log_p_tail, torch.log(p_centre.clamp(min=1e-12)))
    return -log_p / math.log(2.0)
