"""Range coding of the latent grids under the integer ARM, decoded in parallel wavefronts.

All grids live in one zero-padded canvas so that one table of flat context offsets serves every
position. Position (i, j) of a grid depends on rows above up to column j + r and on the r samples to its
left; with t = j + (r + 1) * i every dependency has a smaller t, so all positions of equal t (across all
grids) are decoded together. The encoder codes symbols in exactly that order.
"""

from __future__ import annotations

from dataclasses import dataclass

import constriction
import numpy as np

from vcodec.entropy.fixed_point import IntegerArm
from vcodec.entropy.stage_times import StageTimes
from vcodec.entropy.tables import mean_values, scale_values
from vcodec.format import LATENT_MAX, LATENT_MIN
from vcodec.shapes import offsets_radius
from vcodec.types import BitstreamError

_ENCODE_CHUNK = 1 << 16


def latent_family() -> constriction.stream.model.QuantizedLaplace:
    return constriction.stream.model.QuantizedLaplace(LATENT_MIN, LATENT_MAX)


@dataclass(frozen=True)
class Canvas:
    """Where each grid sits in the shared zero-padded canvas, and the wavefront order of coded positions."""

    sizes: tuple[tuple[int, int], ...]
    coded: tuple[bool, ...]
    radius: int
    width: int
    height: int
    tops: tuple[int, ...]
    offsets: np.ndarray      # (C,) flat offsets of the causal neighbours
    order: np.ndarray        # flat canvas index of every coded position, in coding order
    step_starts: np.ndarray  # order[step_starts[s]:step_starts[s + 1]] is wavefront s

    @staticmethod
    def build(sizes: list[tuple[int, int]], coded: list[bool], context_offsets: list[tuple[int, int]]) -> "Canvas":
        """context_offsets: the ARM's (dy, dx) neighbours (Arm.offsets), in the ARM's input order."""
        radius = offsets_radius(context_offsets)
        width = max(w for _, w in sizes) + 2 * radius
        tops = []
        top = radius
        for h, _ in sizes:
            tops.append(top)
            top += h + radius
        height = top - radius
        offsets = np.array([dy * width + dx for dy, dx in context_offsets], dtype=np.int64)
        flat, keys = [], []
        for (h, w), grid_top, is_coded in zip(sizes, tops, coded):
            if not is_coded:
                continue
            rows, cols = np.divmod(np.arange(h * w, dtype=np.int32), np.int32(w))
            flat.append((grid_top + rows) * width + radius + cols)
            keys.append(cols + (radius + 1) * rows)
        if flat:
            all_flat, all_keys = np.concatenate(flat), np.concatenate(keys)
            permutation = np.argsort(all_keys, kind="stable")
            order, sorted_keys = all_flat[permutation], all_keys[permutation]
            step_starts = np.searchsorted(sorted_keys, np.arange(sorted_keys[-1] + 2))
        else:
            order, step_starts = np.zeros(0, np.int32), np.zeros(1, np.int64)
        return Canvas(tuple(sizes), tuple(coded), radius, width, height, tuple(tops), offsets, order, step_starts)

    def empty(self) -> np.ndarray:
        """Latents are small integers: int16 keeps an 8K frame's canvas near 140 MB."""
        return np.zeros(self.height * self.width, dtype=np.int16)

    def place(self, grids: list[np.ndarray]) -> np.ndarray:
        buffer = self.empty().reshape(self.height, self.width)
        for grid, top in zip(grids, self.tops):
            h, w = grid.shape
            buffer[top : top + h, self.radius : self.radius + w] = grid
        return buffer.reshape(-1)

    def extract(self, buffer: np.ndarray) -> list[np.ndarray]:
        canvas = buffer.reshape(self.height, self.width)
        return [canvas[top : top + h, self.radius : self.radius + w].astype(np.int32)
                for (h, w), top in zip(self.sizes, self.tops)]

    def contexts(self, buffer: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """(n, C) latent integers (the buffer's int16) around the given flat positions."""
        return buffer[positions[:, None] + self.offsets[None, :]]


def table_indices(arm: IntegerArm, contexts: np.ndarray, nonzero: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean index, scale index) of each context row; `nonzero` marks the rows with a non-zero latent.

    The network runs on those rows only; the others take the all-zero context's constant indices.
    Every row's result is exact whatever the rows beside it, so this is the dense computation's result.
    """
    mean_zero, scale_zero = arm.zero_context_indices
    mean_index = np.full(len(nonzero), mean_zero, dtype=np.int64)
    scale_index = np.full(len(nonzero), scale_zero, dtype=np.int64)
    if nonzero.any():
        mean_index[nonzero], scale_index[nonzero] = arm.table_indices(contexts.astype(np.float64))
    return mean_index, scale_index


def coding_parameters(arm: IntegerArm, canvas: Canvas, buffer: np.ndarray,
                      positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Laplace mean and scale (exact doubles) for the given positions, whose contexts are known."""
    contexts = canvas.contexts(buffer, positions)
    nonzero = contexts.any(axis=1)
    mean_index, scale_index = table_indices(arm, contexts[nonzero], nonzero)
    return mean_values(mean_index), scale_values(scale_index)


def encode_latents(grids: list[np.ndarray], arm: IntegerArm, canvas: Canvas) -> tuple[bytes, np.ndarray]:
    """Range-code every coded position in wavefront order. Returns the stream and each symbol's
    probability-model parameters (means, scales) in coding order, for rate accounting."""
    buffer = canvas.place(grids)
    order = canvas.order
    means = np.empty(len(order))
    scales = np.empty(len(order))
    for start in range(0, len(order), _ENCODE_CHUNK):
        chunk = order[start : start + _ENCODE_CHUNK]
        means[start : start + len(chunk)], scales[start : start + len(chunk)] = coding_parameters(arm, canvas, buffer, chunk)
    symbols = buffer[order].astype(np.int32)
    encoder = constriction.stream.queue.RangeEncoder()
    if len(order):
        encoder.encode(symbols, latent_family(), means, scales)
    return encoder.get_compressed().tobytes(), np.stack([means, scales])


def decode_latents(stream: bytes, arm: IntegerArm, canvas: Canvas,
                   times: StageTimes | None = None) -> list[np.ndarray]:
    """Decode wavefront after wavefront: each step decodes all positions whose contexts are known.

    times: where the split of the time is charged (contexts, ARM, tables, range decoding, steps)."""
    if len(stream) % 4:
        raise BitstreamError("latent stream length is not a multiple of 4 bytes")
    times = times or StageTimes()
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(stream, dtype=np.uint32).copy())
    family = latent_family()
    buffer = canvas.empty()
    # near_nonzero[p]: a decoded non-zero latent lies in p's context (set as each one is decoded), so
    # only those positions' contexts are gathered and run through the network.
    # (The rows below the last grid are padding: marks of positions past it are never read.)
    near_nonzero = np.zeros(len(buffer) + (canvas.radius + 1) * canvas.width, dtype=bool)
    dependents = -canvas.offsets
    order, starts = canvas.order, canvas.step_starts
    times.lap("latent set-up")
    try:
        for step in range(len(starts) - 1):
            positions = order[starts[step] : starts[step + 1]]
            nonzero = near_nonzero[positions]
            contexts = canvas.contexts(buffer, positions[nonzero])
            times.lap("contexts")
            mean_index, scale_index = table_indices(arm, contexts, nonzero)
            times.lap("integer ARM")
            means, scales = mean_values(mean_index), scale_values(scale_index)
            times.lap("tables")
            symbols = decoder.decode(family, means, scales)
            times.lap("range decoding")
            buffer[positions] = symbols
            decoded_nonzero = positions[symbols != 0]
            if len(decoded_nonzero):
                near_nonzero[decoded_nonzero[:, None] + dependents[None, :]] = True
            times.lap("wavefront steps")
    except (ValueError, RuntimeError, AssertionError) as error:
        raise BitstreamError(f"latent stream is corrupt ({error})") from None
    grids = canvas.extract(buffer)
    times.lap("latent set-up")
    return grids


def information_bits(symbols: np.ndarray, means: np.ndarray, scales: np.ndarray) -> float:
    """Sum of -log2 P(symbol) under the quantised Laplace (without the coder's finite-precision floor)."""
    distance = np.abs(symbols - means)
    upper = np.exp(-np.maximum(distance - 0.5, 0.0) / scales)
    lower = np.exp(-(distance + 0.5) / scales)
    centre = distance < 0.5
    probability = np.where(centre, 1.0 - 0.5 * (np.exp(-(0.5 - np.minimum(distance, 0.5)) / scales) + lower),
                           0.5 * (upper - lower))
    return float(-np.log2(np.maximum(probability, 1e-300)).sum())
