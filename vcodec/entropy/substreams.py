"""Latent substreams (frame format 4): independent range-coded streams that decoders run in parallel.

Each coded grid of at least 2 * MIN_BAND_ROWS rows is cut into horizontal bands (at most one per
substream, each at least MIN_BAND_ROWS rows); a band's contexts see zeros above its first row, as at the
top of a grid, so no band depends on another. Bands (and whole small grids) are dealt to the substreams
largest first, each to the substream with the fewest positions so far, which balances the work. A
substream codes its bands together, in one wavefront order (vcodec.entropy.latent_coder.Canvas).

With one substream every grid is one band and the order is exactly that of versions 1-3. Measured on
trained frames (docs/results/decode-speed-2026-11-25.md): two substreams cost 0.25 % of a 1080p frame's
bytes (three grids split) and nothing at 416x240 (no grid is tall enough to split, whole grids are dealt).
"""

from __future__ import annotations

from dataclasses import dataclass

from vcodec.format import MAX_LATENT_SUBSTREAMS

MIN_BAND_ROWS = 128  # a band has at least this many rows: a split costs rate at the band's top rows


@dataclass(frozen=True)
class Band:
    """Rows top .. top + rows - 1 of latent grid `grid` (all its columns)."""

    grid: int
    top: int
    rows: int
    width: int

    @property
    def positions(self) -> int:
        return self.rows * self.width


def default_substreams(height: int) -> int:
    """What the encoder writes: two substreams once the full-resolution grid can be split (a frame of
    at least 2 * MIN_BAND_ROWS rows), else one (a second stream would only add its few bytes)."""
    return 2 if height >= 2 * MIN_BAND_ROWS else 1


def latent_bands(sizes: list[tuple[int, int]], coded: list[bool], substreams: int) -> tuple[tuple[Band, ...], ...]:
    """Per substream, its bands in coding order (grid, then top). Pure: encoder and decoder both call it."""
    if not 1 <= substreams <= MAX_LATENT_SUBSTREAMS:
        raise ValueError(f"substreams must be 1..{MAX_LATENT_SUBSTREAMS}, not {substreams}")
    pieces = []
    for grid, ((height, width), is_coded) in enumerate(zip(sizes, coded)):
        if not is_coded:
            continue
        count = max(1, min(substreams, height // MIN_BAND_ROWS))
        edges = [height * k // count for k in range(count + 1)]
        pieces.extend(Band(grid, top, bottom - top, width) for top, bottom in zip(edges[:-1], edges[1:]))
    loads = [0] * substreams
    dealt: list[list[Band]] = [[] for _ in range(substreams)]
    for band in sorted(pieces, key=lambda piece: -piece.positions):  # stable: ties keep grid, top order
        target = loads.index(min(loads))
        dealt[target].append(band)
        loads[target] += band.positions
    return tuple(tuple(sorted(bands, key=lambda band: (band.grid, band.top))) for bands in dealt)
