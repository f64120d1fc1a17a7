"""The integer ARM: the one function that turns causal contexts into Laplace table indices.

Integers are held in float64: every product and partial sum is an integer below 2^53 (see
vcodec.entropy.constants), so the result is exact whatever order BLAS, thread count or CPU sums in.
Encoder and decoder both call `IntegerArm.table_indices`, so they derive identical probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcodec.entropy.constants import (
    ACT_FRAC_BITS,
    ACT_LIMIT,
    LOG2_SCALE_FRAC_BITS,
    MEAN_FRAC_BITS,
    MEAN_LIMIT,
    SCALE_TABLE_SIZE,
)
from vcodec.format import LOG2_SCALE_MIN
from vcodec.shapes import arm_residual_layers

_ACT_ONE = float(1 << ACT_FRAC_BITS)
# Snapping the output layer (ACT_FRAC_BITS fractional bits) to table indices by rounding: add half a
# table step (and remove the scale table's origin), then multiply by 2^-shift and floor. Exact in float64.
_ROUNDING_OFFSETS = np.array([
    float(1 << (ACT_FRAC_BITS - MEAN_FRAC_BITS - 1)),
    float((1 << (ACT_FRAC_BITS - LOG2_SCALE_FRAC_BITS - 1)) - LOG2_SCALE_MIN * (1 << ACT_FRAC_BITS)),
])
_SNAP_FACTORS = np.array([2.0 ** -(ACT_FRAC_BITS - MEAN_FRAC_BITS), 2.0 ** -(ACT_FRAC_BITS - LOG2_SCALE_FRAC_BITS)])
_INDEX_LOW = np.array([-float(MEAN_LIMIT << MEAN_FRAC_BITS), 0.0])
_INDEX_HIGH = np.array([float(MEAN_LIMIT << MEAN_FRAC_BITS), float(SCALE_TABLE_SIZE - 1)])


@dataclass(frozen=True)
class IntegerArm:
    """Quantised ARM: weights w_int * 2^-weight_step_exp, biases b_int * 2^-bias_step_exp; hidden layers
    then the output layer, residual where vcodec.shapes.arm_residual_layers says (as in the float ARM)."""

    weights: tuple[np.ndarray, ...]  # (out, in) float64 holding integers; the last is the output layer
    biases: tuple[np.ndarray, ...]
    weight_step_exp: int
    bias_step_exp: int

    @property
    def layer_shapes(self) -> tuple[tuple[int, int], ...]:
        """(inputs, outputs) of each layer, as vcodec.shapes.arm_layer_shapes gives them."""
        return tuple((int(w.shape[1]), int(w.shape[0])) for w in self.weights)

    def table_indices(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """contexts: (n, C) latent integers (float64) -> (mean index, scale index), int64 each.

        In-place numpy operations: this runs once per wavefront, thousands of times per frame.
        """
        # acc is an integer below 2^45; acc * 2^-kw is exact (a power of two). Adding the bias, a multiple
        # of 2^(8 - kb), gives a multiple of 2^-max(kw, kb - 8) below 2^(45 - kw) + 2^23: at most
        # 45 + max(0, kb - 8 - kw) <= 53 significant bits, so the sum is exact too.
        inverse_step = 2.0 ** -self.weight_step_exp
        bias_scale = 2.0 ** (ACT_FRAC_BITS - self.bias_step_exp)
        x = contexts * _ACT_ONE
        last = len(self.weights) - 1
        residual = arm_residual_layers(self.layer_shapes)
        for index in range(last):
            acc = x @ self.weights[index].T
            acc *= inverse_step
            acc += self.biases[index] * bias_scale
            np.floor(acc, out=acc)
            np.maximum(acc, 0.0, out=acc)
            np.minimum(acc, ACT_LIMIT, out=acc)
            if residual[index]:
                acc += x
                np.minimum(acc, ACT_LIMIT, out=acc)
            x = acc
        out = x @ self.weights[last].T
        out *= inverse_step
        out += self.biases[last] * bias_scale
        np.floor(out, out=out)
        # Column 0: mean in units of 2^-MEAN_FRAC_BITS; column 1: log2 scale in table steps (rounded).
        out += _ROUNDING_OFFSETS
        out *= _SNAP_FACTORS
        np.floor(out, out=out)
        np.maximum(out, _INDEX_LOW, out=out)
        np.minimum(out, _INDEX_HIGH, out=out)
        indices = out.astype(np.int64)
        return indices[:, 0], indices[:, 1]
