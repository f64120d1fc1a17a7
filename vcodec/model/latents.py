"""Latent grid geometry and the ARM's causal neighbourhoods, shared by training, encoder and decoder."""

from __future__ import annotations

import math


def grid_sizes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """Grid l is ceil(H / 2^l) x ceil(W / 2^l): every even frame size works without padding the frame."""
    return [(math.ceil(height / 2**level), math.ceil(width / 2**level)) for level in range(levels)]


def context_radius(context: int) -> int:
    """24 neighbours = causal half of a 7x7 window (radius 3); 12 = causal half of 5x5 (radius 2)."""
    radius = {24: 3, 12: 2}.get(context)
    if radius is None:
        raise ValueError(f"unsupported ARM context size {context}")
    return radius


def context_offsets(context: int) -> list[tuple[int, int]]:
    """(dy, dx) of the causal neighbours in raster order: full rows above, then the left part of the row.

    The order is part of the bitstream semantics (the ARM's first layer weights follow it).
    """
    radius = context_radius(context)
    offsets = [(dy, dx) for dy in range(-radius, 0) for dx in range(-radius, radius + 1)]
    offsets += [(0, dx) for dx in range(-radius, 0)]
    assert len(offsets) == context
    return offsets
