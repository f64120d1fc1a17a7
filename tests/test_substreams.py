"""Latent substreams (frame format 4): how grids are cut into bands and dealt, that every substream
decodes alone, and that the decoded frame never depends on how many processes decode it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import constriction
import numpy as np
import pytest

from vcodec.bitstream.container import ContainerReader
from vcodec.bitstream.frame_header import parse_header
from vcodec.decoder import decode_frame, decode_latent_grids
from vcodec.entropy.latent_coder import Canvas, decode_latents, encode_latents, latent_family, table_family
from vcodec.entropy.latent_workers import decode_grids
from vcodec.entropy.param_coder import integer_arm
from vcodec.entropy.substreams import MIN_BAND_ROWS, Band, default_substreams, latent_bands
from vcodec.format import LATENT_MAX, LATENT_MIN
from vcodec.io.formats import frame_to_bytes
from vcodec.model.arm import Arm
from vcodec.shapes import context_offsets, grid_sizes, offsets_radius
from vcodec.types import BitstreamError

GOLDEN_DIR = Path(__file__).parent / "golden"
SIZES_1080P = grid_sizes(1080, 1920, 7)


def test_one_substream_keeps_whole_grids_in_grid_order() -> None:
    (bands,) = latent_bands(SIZES_1080P, [True, False, True, True, True, True, True], 1)
    assert [band.grid for band in bands] == [0, 2, 3, 4, 5, 6]
    assert all(band.top == 0 and (band.rows, band.width) == SIZES_1080P[band.grid] for band in bands)


def test_two_substreams_of_a_1080p_frame_are_frozen() -> None:
    """Bitstream semantics of format 4, written out: grids of 256 rows or more are halved, the pieces dealt
    largest first to the lighter substream."""
    streams = latent_bands(SIZES_1080P, [True] * 7, 2)
    assert streams == (
        (Band(0, 0, 540, 1920), Band(1, 0, 270, 960), Band(2, 0, 135, 480), Band(3, 0, 135, 240)),
        (Band(0, 540, 540, 1920), Band(1, 270, 270, 960), Band(2, 135, 135, 480), Band(4, 0, 68, 120),
         Band(5, 0, 34, 60), Band(6, 0, 17, 30)),
    )
    loads = [sum(band.positions for band in stream) for stream in streams]
    assert abs(loads[0] - loads[1]) / sum(loads) < 0.01


@pytest.mark.parametrize("substreams", [1, 2, 3, 5, 16])
@pytest.mark.parametrize(("height", "width"), [(1080, 1920), (240, 416), (720, 1280), (2160, 3840)])
def test_bands_cover_every_coded_row_once(substreams: int, height: int, width: int) -> None:
    sizes = grid_sizes(height, width, 7)
    coded = [True, True, False, True, True, True, True]
    streams = latent_bands(sizes, coded, substreams)
    assert len(streams) == substreams
    for grid, ((rows, columns), is_coded) in enumerate(zip(sizes, coded)):
        bands = sorted((band for stream in streams for band in stream if band.grid == grid), key=lambda b: b.top)
        if not is_coded:
            assert bands == []
            continue
        assert all(band.width == columns for band in bands)
        assert [band.top for band in bands] == [0, *np.cumsum([band.rows for band in bands[:-1]])]
        assert sum(band.rows for band in bands) == rows
        assert len(bands) == 1 or min(band.rows for band in bands) >= MIN_BAND_ROWS


def test_encoder_default_splits_only_frames_tall_enough() -> None:
    assert default_substreams(240) == 1 and default_substreams(2 * MIN_BAND_ROWS - 2) == 1
    assert default_substreams(2 * MIN_BAND_ROWS) == 2 and default_substreams(2160) == 2


def _trained_like_arm() -> tuple[Arm, object]:
    generator = np.random.default_rng(4)
    arm = Arm(16, (16, 16))
    weights = np.round(generator.laplace(0, 30, sum(a * b for a, b in arm.layer_shapes))).astype(np.int64)
    biases = np.round(generator.laplace(0, 200, sum(b for _, b in arm.layer_shapes))).astype(np.int64)
    return arm, integer_arm(arm.layer_shapes, weights, biases, 8, 10)


def _sparse_latents(sizes: list[tuple[int, int]], seed: int, zero_share: float = 0.7) -> list[np.ndarray]:
    generator = np.random.default_rng(seed)
    grids = []
    for height, width in sizes:
        values = np.round(generator.laplace(0, 1.5, (height, width)))
        values[generator.random((height, width)) < zero_share] = 0
        grids.append(np.clip(values, LATENT_MIN, LATENT_MAX).astype(np.int32))
    return grids


@pytest.mark.parametrize("zero_share", [0.7, 0.99])  # the decoder gives up its sparse path, or keeps it
@pytest.mark.parametrize("substreams", [1, 2, 3, 4])
def test_substreams_decode_alone_and_together(substreams: int, zero_share: float) -> None:
    """Each substream decodes by itself (its own canvas: a parallel decoder's share), and all of them in one
    lockstep canvas, to the same values; a process pool of any size gives the same grids."""
    sizes = grid_sizes(300, 40, 3)
    coded = [True, False, True]
    grids = _sparse_latents(sizes, substreams, zero_share)
    grids[1][:] = 0
    arm, integer = _trained_like_arm()
    canvas = Canvas.build(sizes, coded, arm.offsets, substreams)
    streams, symbols, _ = encode_latents(grids, integer, canvas)
    assert len(streams) == substreams and len(symbols) == sum(h * w for (h, w), c in zip(sizes, coded) if c)
    bands = latent_bands(sizes, coded, substreams)
    for index, stream in enumerate(streams):
        alone = Canvas.for_streams(sizes, (bands[index],), arm.offsets)
        values = decode_latents([stream], integer, alone)
        for band, value in zip(alone.bands, values):
            assert np.array_equal(value, grids[band.grid][band.top : band.top + band.rows])
    together = canvas.extract(canvas.place(grids))
    for workers in (1, 2, 3):
        decoded = decode_grids(streams, integer, sizes, bands, arm.offsets, workers=workers)
        assert all(np.array_equal(a, b) for a, b in zip(decoded, together))
        assert all(np.array_equal(a, b) for a, (b, c) in zip(decoded, zip(grids, coded)) if c)


def test_one_substream_codes_exactly_as_format_3() -> None:
    """Format 4 with one substream is format 3's latent coding: re-coding the latents of a version-3 golden
    frame gives its latent stream byte for byte."""
    with ContainerReader(GOLDEN_DIR / "v3" / "small_8bit_1f.vcc") as reader:
        data = reader.read_frame(0)
    header, offset = parse_header(data)
    grids, integer, offsets = decode_latent_grids(data)
    canvas = Canvas.build([g.shape for g in grids], list(header.coded_grids), offsets, 1)
    streams, _, _ = encode_latents(grids, integer, canvas, table_model=False)
    assert streams == [data[offset + header.param_stream_bytes :]]


def test_the_two_substream_golden_file_decodes_alike_in_one_or_two_processes() -> None:
    manifest = json.loads((GOLDEN_DIR / "v4" / "manifest.json").read_text())
    with ContainerReader(GOLDEN_DIR / "v4" / "main_8bit_1f_tall.vcc") as reader:
        data = reader.read_frame(0)
    assert parse_header(data)[0].latent_substreams == 2
    for workers in (1, 2):
        digest = hashlib.sha256(frame_to_bytes(decode_frame(data, workers=workers))).hexdigest()
        assert digest == manifest["main_8bit_1f_tall"]["decoded_sha256"]


def test_a_substream_cut_short_is_a_bitstream_error() -> None:
    sizes = grid_sizes(280, 24, 2)
    grids = _sparse_latents(sizes, 9)
    arm, integer = _trained_like_arm()
    canvas = Canvas.build(sizes, [True, True], arm.offsets, 2)
    streams, _, _ = encode_latents(grids, integer, canvas)
    bands = latent_bands(sizes, [True, True], 2)
    for workers in (1, 2):
        with pytest.raises(BitstreamError):
            decode_grids([streams[0], streams[1][:-3]], integer, sizes, bands, arm.offsets, workers=workers)
        with pytest.raises(BitstreamError):
            decode_grids([streams[0]], integer, sizes, bands, arm.offsets, workers=workers)


def _sorted_order(sizes: list[tuple[int, int]], bands_by_stream: tuple[tuple[Band, ...], ...],
                  offsets: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """The coding order as docs/bitstream.md states it: the positions of the bands (laid out as Canvas does,
    band after band, row-major) sorted stably by wavefront t = j + (r + 1) i, then substream."""
    radius = offsets_radius(offsets)
    bands = [band for stream in bands_by_stream for band in stream]
    width = max(band.width for band in bands) + 2 * radius
    flat, keys, top = [], [], radius
    for stream, members in enumerate(bands_by_stream):
        for band in members:
            i, j = np.divmod(np.arange(band.positions), band.width)
            flat.append((top + i) * width + radius + j)
            keys.append((j + (radius + 1) * i) * len(bands_by_stream) + stream)
            top += band.rows + radius
    all_keys = np.concatenate(keys)
    permutation = np.argsort(all_keys, kind="stable")
    wavefronts = int(all_keys.max()) // len(bands_by_stream) + 1
    return (np.concatenate(flat)[permutation],
            np.searchsorted(all_keys[permutation], np.arange(wavefronts * len(bands_by_stream) + 1)))


@pytest.mark.parametrize("seed", range(12))
def test_the_counted_order_is_the_sorted_order(seed: int) -> None:
    """Canvas builds the coding order by counting (no sort): it must be the stable sort the format states."""
    generator = np.random.default_rng(seed)
    height, width = 2 * int(generator.integers(1, 350)), 2 * int(generator.integers(1, 160))
    sizes = grid_sizes(height, width, int(generator.integers(1, 8)))
    coded = [bool(flag) for flag in generator.random(len(sizes)) < 0.8]
    coded[0] = True
    context, layout = [(12, "raster"), (24, "raster"), (8, "priority"), (40, "priority")][seed % 4]
    offsets = context_offsets(context, layout)
    bands = latent_bands(sizes, coded, int(generator.integers(1, 6)))
    canvas = Canvas.for_streams(sizes, bands, offsets)
    order, starts = _sorted_order(sizes, bands, offsets)
    assert np.array_equal(canvas.order, order) and np.array_equal(canvas.step_starts, starts)


@pytest.mark.parametrize("table_model", [True, False])  # format 7's table model, formats 1-6's Laplace alone
@pytest.mark.parametrize("zero_share", [0.0, 0.7, 0.99])
@pytest.mark.parametrize(("context", "layout", "substreams"), [(16, "priority", 1), (24, "raster", 2), (8, "priority", 3),
                                                               (40, "priority", 1)])
def test_the_arm_run_ahead_in_a_thread_decodes_the_same_values(zero_share: float, context: int, layout: str,
                                                               substreams: int, table_model: bool) -> None:
    """The decoder's second thread (the ARM computed ahead of the range decoder, each position once its
    neighbours are decoded) gives every value of the one-thread loop, dense or sparse, for every context."""
    sizes = grid_sizes(290, 52, 4)
    coded = [True, True, False, True]
    grids = _sparse_latents(sizes, context + substreams, zero_share)
    grids[2][:] = 0
    generator = np.random.default_rng(context)
    arm = Arm(context, (context, context), layout)
    weights = np.round(generator.laplace(0, 30, sum(a * b for a, b in arm.layer_shapes))).astype(np.int64)
    biases = np.round(generator.laplace(0, 200, sum(b for _, b in arm.layer_shapes))).astype(np.int64)
    integer = integer_arm(arm.layer_shapes, weights, biases, 8, 10)
    canvas = Canvas.build(sizes, coded, arm.offsets, substreams)
    streams, _, _ = encode_latents(grids, integer, canvas, table_model)
    serial = decode_latents(streams, integer, canvas, ahead=False, table_model=table_model)
    for _ in range(3):  # the threads' interleaving differs from run to run; the values may not
        ahead = decode_latents(streams, integer, canvas, ahead=True, table_model=table_model)
        assert all(np.array_equal(a, b) for a, b in zip(ahead, serial))
    buffer = canvas.empty()
    decoders = [constriction.stream.queue.RangeDecoder(np.frombuffer(s, dtype=np.uint32).copy()) for s in streams]
    *_, ran_ahead = integer.decode_wavefronts(
        buffer, canvas.order, canvas.step_starts, substreams, canvas.offsets,
        lambda q, means, scales: decoders[q].decode(latent_family(), means, scales),
        (lambda q, rows: decoders[q].decode(table_family(), rows)) if table_model else None, canvas.width, True)
    assert ran_ahead and all(np.array_equal(a, b) for a, b in zip(canvas.extract_bands(buffer), serial))
    for band, value in zip(canvas.bands, serial):
        assert np.array_equal(value, grids[band.grid][band.top : band.top + band.rows])


def test_a_corrupt_stream_stops_the_thread_run_ahead() -> None:
    """A range decoder that fails mid-frame ends the decode with a bitstream error (the helper thread is
    stopped and joined, nothing hangs)."""
    sizes = grid_sizes(200, 64, 2)
    grids = _sparse_latents(sizes, 5)
    arm, integer = _trained_like_arm()
    canvas = Canvas.build(sizes, [True, True], arm.offsets, 1)
    streams, _, _ = encode_latents(grids, integer, canvas, table_model=False)
    with pytest.raises(BitstreamError):
        decode_latents([streams[0][: len(streams[0]) // 2 // 4 * 4]], integer, canvas, ahead=True, table_model=False)
    # Under the table model every code point is some symbol, so a cut stream may decode to other values
    # (the frame header's stream lengths and the container's CRC catch a cut file): it ends either way.
    streams, _, _ = encode_latents(grids, integer, canvas)
    try:
        values = decode_latents([streams[0][: len(streams[0]) // 2 // 4 * 4]], integer, canvas, ahead=True)
        assert not all(np.array_equal(value, grids[band.grid][band.top : band.top + band.rows])
                       for band, value in zip(canvas.bands, values))
    except BitstreamError:
        pass
    calls = []

    def failing(stream: int, lo: int, hi: int) -> np.ndarray:
        calls.append(hi)
        if len(calls) == 5:
            raise RuntimeError("the range decoder failed")
        return np.zeros(hi - lo, dtype=np.int32)

    buffer, width = canvas.empty(), canvas.width
    with pytest.raises(RuntimeError, match="failed"):
        integer.decode_wavefronts(buffer, canvas.order, canvas.step_starts, 1, canvas.offsets,
                                  lambda stream, means, scales: failing(stream, 0, len(means)),
                                  lambda stream, rows: failing(stream, 0, len(rows)), width, True)
    assert len(calls) == 5
