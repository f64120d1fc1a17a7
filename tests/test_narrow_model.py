"""Frame format 7's table model: the rows are the quantised Laplace's probabilities, built the same way
everywhere, and latents under it (escapes and wide Laplaces included) decode exactly, at the same rate."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from vcodec.bitstream.container import ContainerReader
from vcodec.decoder import decode_latent_grids
from vcodec.entropy.constants import MEAN_FRAC_BITS, NARROW_PROB_BITS, NARROW_RADIUS
from vcodec.entropy.latent_coder import Canvas, assemble_grids, decode_latents, encode_latents
from vcodec.entropy.narrow_model import ALPHABET, ESCAPE, MEAN_FRACTIONS, NARROW_SCALES, narrow_rows, narrow_table
from vcodec.entropy.tables import SCALE_TABLE

GOLDEN_DIR = Path(__file__).parent / "golden"


def test_the_table_is_frozen() -> None:
    """The rows are part of the format: any change to how they are built changes what files mean."""
    table = narrow_table()
    assert table.shape == (NARROW_SCALES * MEAN_FRACTIONS, ALPHABET) == (81 * 32, 14)
    assert hashlib.sha256(table.tobytes()).hexdigest() == "f31807007ea69c9b5e1a31d2f33f647a12cb5fe3569566099b78c7bc0ed5d51d"


def test_rows_are_the_quantised_laplace() -> None:
    """Each row holds the mass of each value's unit interval under the Laplace (to 1e-8, the integer exp's
    and the 2^-32 grid's error) and the rest in the escape; every entry is a multiple of 2^-32, at least one."""
    table = narrow_table()
    units = table * 2.0**NARROW_PROB_BITS
    assert np.array_equal(units, np.round(units)) and units.min() >= 1
    assert np.all(np.abs(table.sum(axis=1) - 1.0) < ALPHABET * 2.0**-NARROW_PROB_BITS)
    scale = SCALE_TABLE[np.arange(NARROW_SCALES)][:, None, None]
    fraction = ((np.arange(MEAN_FRACTIONS) - MEAN_FRACTIONS // 2) / MEAN_FRACTIONS)[None, :, None]
    values = np.arange(-NARROW_RADIUS, NARROW_RADIUS + 1)[None, None, :]

    def cdf(x: np.ndarray) -> np.ndarray:
        return np.where(x < 0, 0.5 * np.exp(np.minimum(x, 0) / scale), 1 - 0.5 * np.exp(-np.maximum(x, 0) / scale))

    laplace = cdf(values - fraction + 0.5) - cdf(values - fraction - 0.5)
    laplace = laplace.reshape(-1, 2 * NARROW_RADIUS + 1)
    assert np.abs(table[:, :ESCAPE] - laplace).max() < 1e-8
    assert np.abs(table[:, ESCAPE] - (1 - laplace.sum(axis=1))).max() < 1e-8


@pytest.mark.parametrize(("mean_index", "scale_index", "row", "centre"), [
    (0, 0, 16, 0), (-16, 0, 0, 0), (15, 0, 31, 0), (16, 0, 0, 1), (-17, 3, 3 * 32 + 31, -1),
    (-4096, NARROW_SCALES - 1, (NARROW_SCALES - 1) * 32 + 16, -128), (40, NARROW_SCALES, -1, 1)])
def test_the_row_of_a_laplace(mean_index: int, scale_index: int, row: int, centre: int) -> None:
    """Mean index m (mean m / 32) rounds to its centre, ties up; the row is scale * 32 + the fraction from -1/2;
    scales above 2^-1 have none."""
    assert MEAN_FRAC_BITS == 5
    rows, centres = narrow_rows(np.array([mean_index]), np.array([scale_index]))
    assert (int(rows[0]), int(centres[0])) == (row, centre)


def _golden_latents(name: str) -> tuple[list[np.ndarray], object, list[tuple[int, int]]]:
    with ContainerReader(GOLDEN_DIR / "v6" / f"{name}.vcc") as reader:
        return decode_latent_grids(reader.read_frame(0))


@pytest.mark.parametrize("name", ["main_8bit_1f", "tiny_10bit_2f", "main_8bit_1f_tall"])
@pytest.mark.parametrize("outliers", [0, 25])
def test_latents_decode_exactly_under_the_table_model(name: str, outliers: int) -> None:
    """A trained frame's latents (with values planted far from their means: escapes) decode to themselves,
    in one thread or with the ARM ahead, in one or two substreams; the rate is the Laplace's within 0.5 %
    (plus what the escapes cost)."""
    grids, arm, offsets = _golden_latents(name)
    generator = np.random.default_rng(outliers)
    for _ in range(outliers):
        level = int(generator.integers(0, 2))
        i, j = (int(generator.integers(0, side)) for side in grids[level].shape)
        grids[level][i, j] = int(generator.choice([-40, -9, 9, 40]))
    coded = [bool(np.any(grid)) for grid in grids]
    for substreams in (1, 2):
        canvas = Canvas.build([grid.shape for grid in grids], coded, offsets, substreams)
        laplace_streams, _, _ = encode_latents(grids, arm, canvas, table_model=False)
        streams, _, (means, scales) = encode_latents(grids, arm, canvas)
        buffer = canvas.place(grids)
        _, _, rows = arm.coding_parameters(buffer, canvas.order, canvas.offsets)
        symbols = buffer[canvas.order]
        escapes = int(np.sum((rows >= 0) & (np.abs(symbols - np.floor(means + 0.5)) > NARROW_RADIUS)))
        assert (escapes > 0) == (outliers > 0)
        table_bytes, laplace_bytes = sum(map(len, streams)), sum(map(len, laplace_streams))
        assert table_bytes <= 1.005 * laplace_bytes + 4 * escapes + 8
        for ahead in (False, True):
            values = decode_latents(streams, arm, canvas, ahead=ahead)
            decoded = assemble_grids(canvas.sizes, canvas.bands, values)
            assert all(np.array_equal(a, b) for a, b in zip(decoded, grids))
