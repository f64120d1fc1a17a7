"""The integer ARM: the one function that turns causal contexts into Laplace table indices.

Integers are held in float64: every product and partial sum is an integer below 2^53 (see
vcodec.entropy.constants), so the result is exact whatever order BLAS, thread count or CPU sums in.
Encoder and decoder both call `IntegerArm.table_indices`, so they derive identical probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

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

    @cached_property
    def _scaled_layers(self) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """Per layer: W^T times 2^-weight_step_exp (contiguous) and the bias in activation units.

        Scaling by a power of two changes no significand bit, so x @ (W 2^-kw) is exactly (x @ W) 2^-kw;
        the first layer's weights also take the contexts' 2^ACT_FRAC_BITS, so it reads the raw latents.
        The output layer also takes the snap to table steps: floor((floor(z) + o) 2^-s) = floor((z + o) 2^-s)
        for an integer offset o, so its weights take 2^-s and its bias (b + o) 2^-s, one floor instead of two.
        """
        layers = []
        last = len(self.weights) - 1
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            input_scale = _ACT_ONE if index == 0 else 1.0
            scaled = np.ascontiguousarray(weight.T) * (input_scale * 2.0 ** -self.weight_step_exp)
            scaled_bias = bias * 2.0 ** (ACT_FRAC_BITS - self.bias_step_exp)
            if index == last:
                scaled = scaled * _SNAP_FACTORS
                scaled_bias = (scaled_bias + _ROUNDING_OFFSETS) * _SNAP_FACTORS
            layers.append((scaled, scaled_bias))
        return tuple(layers)

    @cached_property
    def _residual(self) -> tuple[bool, ...]:
        return tuple(arm_residual_layers(self.layer_shapes))

    @cached_property
    def zero_context_indices(self) -> tuple[int, int]:
        """The (mean, scale) indices of an all-zero context, by the same arithmetic as any other row.

        Most contexts of a trained frame are all zero (90 % of a 1080p frame's positions at lambda 1e-4):
        the coders give them this constant instead of running the network on each.
        """
        mean_index, scale_index = self.table_indices(np.zeros((1, self.layer_shapes[0][0])))
        return int(mean_index[0]), int(scale_index[0])

    def table_indices(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """contexts: (n, C) latent integers (float64) -> (mean index, scale index), int64 each.

        In-place numpy operations, scales folded into the weights: this runs once per wavefront,
        thousands of times per frame. Every partial sum of products (and the bias) is a multiple of
        2^-max(kw, kb - 8) below 2^(45 - kw) + 2^23, hence exact in float64 in any summation order.
        """
        layers = self._scaled_layers
        residual = self._residual
        x = contexts
        last = len(layers) - 1
        for index in range(last):
            weight, bias = layers[index]
            acc = x @ weight
            acc += bias
            np.floor(acc, out=acc)
            np.maximum(acc, 0.0, out=acc)  # two ufuncs: np.clip's Python wrapper costs more than both
            if residual[index]:
                acc += x
            np.minimum(acc, ACT_LIMIT, out=acc)
            x = acc
        weight, bias = layers[last]
        # Column 0: mean in units of 2^-MEAN_FRAC_BITS; column 1: log2 scale in table steps (rounded; the
        # offsets and the snap are folded into the layer).
        out = x @ weight
        out += bias
        np.floor(out, out=out)
        np.maximum(out, _INDEX_LOW, out=out)
        np.minimum(out, _INDEX_HIGH, out=out)
        indices = out.astype(np.int64)
        return indices[:, 0], indices[:, 1]
