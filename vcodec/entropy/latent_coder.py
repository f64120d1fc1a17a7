"""Range coding of the latent grids under the integer ARM, decoded in parallel wavefronts.

The coded grids are cut into bands, dealt to substreams (vcodec.entropy.substreams; one band per grid
and one substream before format 4). All bands live in one zero-padded canvas so that one table of flat
context offsets serves every position. Position (i, j) of a band depends on rows above up to column
j + r and on the r samples to its left; with t = j + (r + 1) * i every dependency has a smaller t, so all
positions of equal t (across all bands) are decoded together. Each substream is its own range-coded
stream holding its positions in that order (t, then band order).
"""

from __future__ import annotations

from dataclasses import dataclass

import constriction
import numpy as np

from vcodec.entropy import _arm_kernels
from vcodec.entropy.constants import NARROW_RADIUS
from vcodec.entropy.fixed_point import IntegerArm
from vcodec.entropy.narrow_model import ESCAPE, narrow_table
from vcodec.entropy.stage_times import StageTimes
from vcodec.entropy.substreams import Band, latent_bands
from vcodec.format import LATENT_MAX, LATENT_MIN
from vcodec.shapes import offsets_radius
from vcodec.types import BitstreamError

_ENCODE_CHUNK = 1 << 16


def latent_family() -> constriction.stream.model.QuantizedLaplace:
    return constriction.stream.model.QuantizedLaplace(LATENT_MIN, LATENT_MAX)


def table_family() -> constriction.stream.model.Categorical:
    """Format 7's table model: each symbol's probabilities given (rows of narrow_table, exact multiples of
    2^-32), quantised by constriction with arithmetic alone."""
    return constriction.stream.model.Categorical(perfect=False)


@dataclass(frozen=True)
class Canvas:
    """Where each coded band sits in the shared zero-padded canvas, and the wavefront order of its positions.

    The bands of every substream given are laid out one below the other (`radius` zero rows apart) and
    decoded in lockstep: wavefront s holds, substream by substream, the positions of key s.
    """

    sizes: tuple[tuple[int, int], ...]  # every latent grid, coded or not
    bands: tuple[Band, ...]             # the canvas's bands, substream by substream
    streams: int                        # substreams in this canvas
    radius: int
    width: int
    height: int
    tops: tuple[int, ...]    # canvas row of each band's first row
    offsets: np.ndarray      # (C,) flat offsets of the causal neighbours
    order: np.ndarray        # flat canvas index of every coded position, in coding order
    step_starts: np.ndarray  # order[step_starts[s * streams + q] : step_starts[s * streams + q + 1]]: substream q's wavefront s

    @staticmethod
    def build(sizes: list[tuple[int, int]], coded: list[bool], context_offsets: list[tuple[int, int]],
              substreams: int = 1) -> "Canvas":
        """All substreams of a frame. context_offsets: the ARM's (dy, dx) neighbours (Arm.offsets), in the
        ARM's input order."""
        return Canvas.for_streams(sizes, latent_bands(sizes, coded, substreams), context_offsets)

    @staticmethod
    def for_streams(sizes: list[tuple[int, int]], bands_by_stream: tuple[tuple[Band, ...], ...],
                    context_offsets: list[tuple[int, int]]) -> "Canvas":
        """The given substreams only (a parallel decoder's share)."""
        radius = offsets_radius(context_offsets)
        bands = tuple(band for stream in bands_by_stream for band in stream)
        width = max((band.width for band in bands), default=1) + 2 * radius
        tops = []
        top = radius
        for band in bands:
            tops.append(top)
            top += band.rows + radius
        height = top
        offsets = np.array([dy * width + dx for dy, dx in context_offsets], dtype=np.int64)
        streams = max(len(bands_by_stream), 1)
        order, step_starts = _wavefront_order(bands, [len(stream) for stream in bands_by_stream], tops, width, radius)
        return Canvas(tuple(sizes), bands, streams, radius, width, height, tuple(tops), offsets, order, step_starts)

    @property
    def wavefronts(self) -> int:
        return (len(self.step_starts) - 1) // self.streams

    def empty(self) -> np.ndarray:
        """Latents are small integers: int16 keeps an 8K frame's canvas near 140 MB."""
        return np.zeros(self.height * self.width, dtype=np.int16)

    def place(self, grids: list[np.ndarray]) -> np.ndarray:
        buffer = self.empty().reshape(self.height, self.width)
        for band, top in zip(self.bands, self.tops):
            buffer[top : top + band.rows, self.radius : self.radius + band.width] = grids[band.grid][band.top : band.top + band.rows]
        return buffer.reshape(-1)

    def extract_bands(self, buffer: np.ndarray) -> list[np.ndarray]:
        canvas = buffer.reshape(self.height, self.width)
        return [canvas[top : top + band.rows, self.radius : self.radius + band.width].copy()
                for band, top in zip(self.bands, self.tops)]

    def extract(self, buffer: np.ndarray) -> list[np.ndarray]:
        """Every grid (zeros where not coded), int32."""
        return assemble_grids(self.sizes, self.bands, self.extract_bands(buffer))


def _wavefront_order(bands: tuple[Band, ...], bands_per_stream: list[int], tops: list[int], width: int,
                     radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat canvas index of every position in coding order, and where each (wavefront, substream) starts.

    The order is that of a stable sort of the positions (band after band, row-major) by wavefront t =
    j + (r + 1) i, then substream: within a wavefront, band after band and row after row. It is built by
    counting instead (each band meets wavefront t in the rows i_lo(t)..i_hi(t)), which skips the sort.
    The order is int32 (an 8K canvas has under 2^31 samples); the small per-wavefront tables are int64.
    """
    if not bands:
        return np.zeros(0, np.int32), np.zeros(1, np.int64)
    step = radius + 1
    rows = np.array([band.rows for band in bands], dtype=np.int64)
    widths = np.array([band.width for band in bands], dtype=np.int64)
    wavefronts = int((widths - 1 + step * (rows - 1)).max()) + 1
    t = np.arange(wavefronts, dtype=np.int64)[:, None]
    first_row = np.maximum(0, -((widths - 1 - t) // step))  # ceil((t - w + 1) / step), at least 0
    last_row = np.minimum(rows - 1, t // step)
    counts = np.maximum(0, last_row - first_row + 1)        # (wavefronts, bands)
    starts = np.concatenate([[0], np.cumsum(counts.reshape(-1))[:-1]]).reshape(counts.shape)
    base = (starts - first_row).astype(np.int64)
    order = np.empty(int(counts.sum()), dtype=np.int32)
    # order[base[j + step i, band] + i] = the flat index of (i, j), band after band: a compiled scatter
    # (numpy's temporaries took 0.04 s of a 1080p decode).
    _arm_kernels.wavefront_order(np.ascontiguousarray(base), rows, widths, np.array(tops, dtype=np.int64), width,
                                 radius, order)
    band_stream = np.repeat(np.arange(len(bands_per_stream)), bands_per_stream)
    stream_counts = np.zeros((wavefronts, len(bands_per_stream)), dtype=np.int64)
    np.add.at(stream_counts, (slice(None), band_stream), counts)
    step_starts = np.concatenate([[0], np.cumsum(stream_counts.reshape(-1))])
    return order, step_starts


def assemble_grids(sizes: tuple[tuple[int, int], ...], bands: tuple[Band, ...] | list[Band],
                   values: list[np.ndarray]) -> list[np.ndarray]:
    grids = [np.zeros(size, dtype=np.int32) for size in sizes]
    place_bands(grids, bands, values)
    return grids


def place_bands(grids: list[np.ndarray], bands: tuple[Band, ...] | list[Band], values: list[np.ndarray]) -> None:
    """Write each band's decoded values into its rows of its grid."""
    for band, value in zip(bands, values):
        grids[band.grid][band.top : band.top + band.rows] = value


def encode_latents(grids: list[np.ndarray], arm: IntegerArm, canvas: Canvas, table_model: bool = True
                   ) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """Range-code every coded position, one stream per substream, each in its wavefront order.

    table_model (format 7 on; False: formats 1-6): within each (wavefront, substream) step, first the
    positions with a row of the table model (vcodec.entropy.narrow_model) under it, then the others and the
    escaped ones under their Laplace, each part in coding order.
    Returns the streams, the symbols in coding order (substream by substream) and each symbol's
    probability-model parameters (means, scales), for rate accounting."""
    buffer = canvas.place(grids)
    order = canvas.order
    means = np.empty(len(order))
    scales = np.empty(len(order))
    rows = np.empty(len(order), dtype=np.int32)
    for start in range(0, len(order), _ENCODE_CHUNK):
        chunk = order[start : start + _ENCODE_CHUNK]
        end = start + len(chunk)
        means[start:end], scales[start:end], rows[start:end] = arm.coding_parameters(buffer, chunk, canvas.offsets)
    symbols = buffer[order].astype(np.int32)
    step_of = np.repeat(np.arange(len(canvas.step_starts) - 1), np.diff(canvas.step_starts))
    stream_of = step_of % canvas.streams
    if not table_model:
        rows[:] = -1
    table_symbols = symbols - np.floor(means + 0.5).astype(np.int32) + NARROW_RADIUS  # exact: means are k/32
    escaped = (rows >= 0) & ((table_symbols < 0) | (table_symbols >= ESCAPE))
    table_symbols = np.where(escaped, ESCAPE, table_symbols).astype(np.int32)
    streams, stream_symbols, stream_means, stream_scales = [], [], [], []
    for stream in range(canvas.streams):
        picked = np.flatnonzero(stream_of == stream)
        entries, under_laplace = _coding_sequence(picked, rows, escaped, step_of)
        encoder = constriction.stream.queue.RangeEncoder()
        starts = np.flatnonzero(np.diff(under_laplace.astype(np.int8), prepend=-1))  # runs under one model
        for start, end in zip(starts, [*starts[1:], len(entries)]):
            run = entries[start:end]
            if under_laplace[start]:
                encoder.encode(symbols[run], latent_family(), means[run], scales[run])
            else:
                encoder.encode(table_symbols[run], table_family(), narrow_table()[rows[run]])
        streams.append(encoder.get_compressed().tobytes())
        stream_symbols.append(symbols[picked])
        stream_means.append(means[picked])
        stream_scales.append(scales[picked])
    return streams, np.concatenate(stream_symbols), np.stack([np.concatenate(stream_means), np.concatenate(stream_scales)])


def _coding_sequence(picked: np.ndarray, rows: np.ndarray, escaped: np.ndarray, step_of: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """One substream's symbols in stream order: each step's positions with a row (under the table, an escape
    among them), then its positions under their Laplace (those without a row, and the escaped ones), each
    part in coding order. picked: the substream's positions in coding order. Returns the positions and
    whether each entry is under the Laplace."""
    under_table = picked[rows[picked] >= 0]
    under_laplace = picked[(rows[picked] < 0) | escaped[picked]]
    entries = np.concatenate([under_table, under_laplace])
    is_laplace = np.concatenate([np.zeros(len(under_table), bool), np.ones(len(under_laplace), bool)])
    sequence = np.argsort(2 * step_of[entries] + is_laplace, kind="stable")  # stable: coding order within parts
    return entries[sequence], is_laplace[sequence]


def decode_latents(streams: list[bytes], arm: IntegerArm, canvas: Canvas, times: StageTimes | None = None,
                   ahead: bool = False, table_model: bool = True) -> list[np.ndarray]:
    """Decode the canvas's substreams in lockstep, wavefront after wavefront: each step decodes all
    positions whose contexts are known. Returns the values of the canvas's bands (int16, band order).

    times: where the split of the time is charged (ARM, range decoding, steps). ahead: run the ARM in a
    second thread ahead of the range decoder (for a core that would otherwise idle; same values).
    table_model: format 7 on (as encode_latents)."""
    if len(streams) != canvas.streams:
        raise BitstreamError(f"{len(streams)} latent substreams given, the canvas has {canvas.streams}")
    for stream in streams:
        if len(stream) % 4:
            raise BitstreamError("latent stream length is not a multiple of 4 bytes")
    times = times or StageTimes()
    decoders = [constriction.stream.queue.RangeDecoder(np.frombuffer(stream, dtype=np.uint32).copy())
                for stream in streams]
    family, table = latent_family(), table_family()

    def decode_laplace(stream: int, means: np.ndarray, scales: np.ndarray) -> np.ndarray:
        return decoders[stream].decode(family, means, scales)

    def decode_table(stream: int, probabilities: np.ndarray) -> np.ndarray:
        return decoders[stream].decode(table, probabilities)

    buffer = canvas.empty()
    times.lap("latent set-up")
    try:
        # Contexts, network, tables and the loop over wavefronts in compiled code; most contexts of a
        # trained frame are all zero and take the zero row's answer without running the network.
        network_seconds, decode_seconds, _ = arm.decode_wavefronts(buffer, canvas.order, canvas.step_starts,
                                                                canvas.streams, canvas.offsets, decode_laplace,
                                                                decode_table if table_model else None,
                                                                canvas.width, ahead)
        times.lap("wavefront steps")
        times.move("wavefront steps", "integer ARM", network_seconds)
        times.move("wavefront steps", "range decoding", decode_seconds)
    except (ValueError, RuntimeError, AssertionError) as error:
        raise BitstreamError(f"latent stream is corrupt ({error})") from None
    values = canvas.extract_bands(buffer)
    times.lap("latent set-up")
    return values


def information_bits(symbols: np.ndarray, means: np.ndarray, scales: np.ndarray) -> float:
    """Sum of -log2 P(symbol) under the quantised Laplace (without the coder's finite-precision floor)."""
    distance = np.abs(symbols - means)
    upper = np.exp(-np.maximum(distance - 0.5, 0.0) / scales)
    lower = np.exp(-(distance + 0.5) / scales)
    centre = distance < 0.5
    probability = np.where(centre, 1.0 - 0.5 * (np.exp(-(0.5 - np.minimum(distance, 0.5)) / scales) + lower),
                           0.5 * (upper - lower))
    return float(-np.log2(np.maximum(probability, 1e-300)).sum())
