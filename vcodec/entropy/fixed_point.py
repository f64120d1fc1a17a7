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
    LOG2_SCALE_MIN,
    MEAN_FRAC_BITS,
    MEAN_LIMIT,
    SCALE_TABLE_SIZE,
)

_ACT_ONE = float(1 << ACT_FRAC_BITS)


@dataclass(frozen=True)
class IntegerArm:
    """Quantised ARM: weights w = w_int * 2^-step_exp (same step for biases), hidden layers then output."""

    weights: tuple[np.ndarray, ...]  # (out, in) float64 holding integers; the last is the output layer
    biases: tuple[np.ndarray, ...]
    step_exp: int

    def residual(self, index: int) -> bool:
        w = self.weights[index]
        return 0 < index < len(self.weights) - 1 and w.shape[0] == w.shape[1]

    def table_indices(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """contexts: (n, C) latent integers (float64) -> (mean index, scale index), int64 each."""
        inverse_step = 2.0 ** -self.step_exp
        x = contexts * _ACT_ONE
        last = len(self.weights) - 1
        for index in range(last):
            acc = x @ self.weights[index].T + self.biases[index] * _ACT_ONE
            y = np.clip(np.floor(acc * inverse_step), 0.0, ACT_LIMIT)
            x = np.minimum(x + y, ACT_LIMIT) if self.residual(index) else y
        out = np.floor((x @ self.weights[last].T + self.biases[last] * _ACT_ONE) * inverse_step)
        out = np.clip(out, -ACT_LIMIT, ACT_LIMIT)
        mean_shift = ACT_FRAC_BITS - MEAN_FRAC_BITS
        mean_index = np.floor((out[:, 0] + (1 << (mean_shift - 1))) * 2.0**-mean_shift)
        mean_limit = MEAN_LIMIT << MEAN_FRAC_BITS
        mean_index = np.clip(mean_index, -mean_limit, mean_limit).astype(np.int64)
        scale_shift = ACT_FRAC_BITS - LOG2_SCALE_FRAC_BITS
        offset = LOG2_SCALE_MIN * (1 << ACT_FRAC_BITS) - (1 << (scale_shift - 1))
        scale_index = np.floor((out[:, 1] - offset) * 2.0**-scale_shift)
        scale_index = np.clip(scale_index, 0, SCALE_TABLE_SIZE - 1).astype(np.int64)
        return mean_index, scale_index
