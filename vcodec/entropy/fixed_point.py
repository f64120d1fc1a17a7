"""The integer ARM: the one network that turns causal contexts into Laplace table indices.

Integers are held in doubles: every product and partial sum is an integer below 2^53 (see
vcodec.entropy.constants), so the result is exact whatever order, vector width or CPU sums it. The loops
are compiled (`_arm_kernels.c`); encoder and decoder both call `IntegerArm.coding_parameters` (one
wavefront, or a chunk, of positions of the latent canvas), so they derive identical probabilities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from vcodec.entropy import _arm_kernels
from vcodec.entropy.constants import (
    ACT_FRAC_BITS,
    ACT_LIMIT,
    LOG2_SCALE_FRAC_BITS,
    MEAN_FRAC_BITS,
    MEAN_LIMIT,
    NARROW_RADIUS,
    SCALE_TABLE_SIZE,
)
from vcodec.entropy.narrow_model import ALPHABET, NARROW_SCALES, narrow_table
from vcodec.entropy.tables import SCALE_TABLE
from vcodec.format import LATENT_MAX, LATENT_MIN, LOG2_SCALE_MIN
from vcodec.shapes import arm_residual_layers

_ACT_ONE = float(1 << ACT_FRAC_BITS)
# Snapping the output layer (ACT_FRAC_BITS fractional bits) to table indices by rounding: add half a
# table step (and remove the scale table's origin), then multiply by 2^-shift and floor. Exact in float64.
_ROUNDING_OFFSETS = np.array([
    float(1 << (ACT_FRAC_BITS - MEAN_FRAC_BITS - 1)),
    float((1 << (ACT_FRAC_BITS - LOG2_SCALE_FRAC_BITS - 1)) - LOG2_SCALE_MIN * (1 << ACT_FRAC_BITS)),
])
_SNAP_FACTORS = np.array([2.0 ** -(ACT_FRAC_BITS - MEAN_FRAC_BITS), 2.0 ** -(ACT_FRAC_BITS - LOG2_SCALE_FRAC_BITS)])
# The kernels' clamps: hidden activations' upper limit, then the output's (mean, scale index) low and high.
_LIMITS = np.array([float(ACT_LIMIT), -float(MEAN_LIMIT << MEAN_FRAC_BITS), 0.0, float(MEAN_LIMIT << MEAN_FRAC_BITS),
                    float(SCALE_TABLE_SIZE - 1)])
_MEAN_STEP = 2.0**-MEAN_FRAC_BITS  # a mean index's value: exact


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
    def _kernel_network(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Widths, residual flags, and all layers' scaled weights and biases, as the kernels take them."""
        shapes = self.layer_shapes
        widths = np.array([shapes[0][0], *(outputs for _, outputs in shapes)], dtype=np.int32)
        residual = np.array(arm_residual_layers(shapes), dtype=np.uint8)
        weights = np.concatenate([weight.ravel() for weight, _ in self._scaled_layers])
        biases = np.concatenate([bias.ravel() for _, bias in self._scaled_layers])
        return widths, residual, weights, biases

    def table_indices(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """contexts: (n, C) latent integers -> (mean index, scale index), int64 each.

        Every partial sum of products (and the bias) is a multiple of 2^-max(kw, kb - 8) below
        2^(45 - kw) + 2^23, hence exact in a double in any summation order. Hidden layers: floor, ReLU,
        the input added where the layer is residual, clamped to ACT_LIMIT; the output layer: floored to
        table steps (the offsets and the snap folded into its weights) and clamped to the tables.
        """
        contexts = np.ascontiguousarray(contexts, dtype=np.int32)
        mean_index = np.empty(len(contexts), dtype=np.int64)
        scale_index = np.empty(len(contexts), dtype=np.int64)
        _arm_kernels.table_indices(contexts, *self._kernel_network, _LIMITS, mean_index, scale_index)
        return mean_index, scale_index

    def coding_parameters(self, canvas: np.ndarray, positions: np.ndarray, offsets: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Laplace means and scales (exact doubles: vcodec.entropy.tables' values) and table-model rows
        (int32, vcodec.entropy.narrow_model.narrow_rows; -1 where the scale has none) of the given flat
        positions of an int16 latent canvas, each context gathered at position + offsets (the causal
        neighbours, whose latents are known). An all-zero context (most of a trained frame's) takes the
        zero row's answer, computed once by the same network: the result is the same row for row."""
        means = np.empty(len(positions))
        scales = np.empty(len(positions))
        rows = np.empty(len(positions), dtype=np.int32)
        _arm_kernels.coding_parameters(canvas, np.ascontiguousarray(positions, dtype=np.int32),
                                       np.ascontiguousarray(offsets, dtype=np.int64), *self._kernel_network, _LIMITS,
                                       _MEAN_STEP, SCALE_TABLE, NARROW_SCALES, means, scales, rows)
        return means, scales, rows

    def decode_wavefronts(self, canvas: np.ndarray, order: np.ndarray, step_starts: np.ndarray, streams: int,
                          offsets: np.ndarray, decode_laplace: Callable[[int, np.ndarray, np.ndarray], np.ndarray],
                          decode_table: Callable[[int, np.ndarray], np.ndarray] | None,
                          canvas_width: int, ahead: bool = False) -> tuple[float, float, bool]:
        """The decoder's wavefront loop, compiled: for each (wavefront, substream) range order[lo:hi] of
        step_starts, the positions' parameters (as coding_parameters), then their int32 symbols from the range
        decoder, written into the int16 canvas (rows of canvas_width samples).

        decode_table None (formats 1-6): every symbol from decode_laplace(stream, means, scales), in coding
        order. Otherwise (format 7) each step first takes the symbols of its positions with a row from
        decode_table(stream, probabilities) (rows of vcodec.entropy.narrow_model.narrow_table), then those of
        its other positions and escapes from decode_laplace, in coding order.
        ahead: the network runs in a second thread, ahead of the range decoding (the same symbols; worth it
        where a core is free). Returns the seconds spent in the network (with the thread: waiting for it) and
        in decode (the loop itself is the rest), and whether the thread ran (it does not where threads are
        missing or could not start)."""
        # One thread reuses one step's room (a 1080p process share saves 21 MB of new pages); the thread
        # ahead keeps every position's until the range decoder has used it.
        longest = int(np.diff(step_starts).max(initial=0))
        room = len(order) if ahead else longest
        means, scales, rows = np.empty(room), np.empty(room), np.empty(room, dtype=np.int32)
        call_means, call_scales = np.empty(longest), np.empty(longest)
        model = narrow_table() if decode_table else np.empty((0, ALPHABET))
        probabilities = np.empty((longest if decode_table else 0, ALPHABET))

        def decode_range(stream: int, kind: int, count: int) -> np.ndarray:
            if kind == 0 and decode_table:
                return decode_table(stream, probabilities[:count])
            return decode_laplace(stream, call_means[:count], call_scales[:count])

        return _arm_kernels.decode_wavefronts(canvas, np.ascontiguousarray(order, dtype=np.int32),
                                              np.ascontiguousarray(step_starts, dtype=np.int64), streams,
                                              np.ascontiguousarray(offsets, dtype=np.int64), *self._kernel_network,
                                              _LIMITS, _MEAN_STEP, SCALE_TABLE, means, scales, rows,
                                              NARROW_SCALES if decode_table else 0, model, NARROW_RADIUS, LATENT_MIN,
                                              LATENT_MAX, probabilities, call_means, call_scales, decode_range,
                                              canvas_width, ahead)
