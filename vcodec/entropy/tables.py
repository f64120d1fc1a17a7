"""Deterministic probability-model tables: snapped Laplace means and scales as exact doubles."""

from __future__ import annotations

import math

import numpy as np

from vcodec.entropy.constants import (
    LOG2_SCALE_FRAC_BITS,
    MEAN_FRAC_BITS,
    SCALE_MANTISSAS_Q16,
    SCALE_TABLE_SIZE,
)
from vcodec.format import LOG2_SCALE_MIN


def exp2_table(indices: np.ndarray, frac_bits: int, offset: int) -> np.ndarray:
    """2^(offset + i / 2^frac_bits) from integer mantissas and exact power-of-two scaling (no libm)."""
    steps_per_octave = 1 << frac_bits
    stride = len(SCALE_MANTISSAS_Q16) // steps_per_octave
    mantissas = np.asarray(SCALE_MANTISSAS_Q16, dtype=np.float64)[(indices % steps_per_octave) * stride]
    return np.ldexp(mantissas, (offset + indices // steps_per_octave - 16).astype(np.int32))


def build_scale_table() -> np.ndarray:
    table = exp2_table(np.arange(SCALE_TABLE_SIZE), LOG2_SCALE_FRAC_BITS, LOG2_SCALE_MIN)
    _check_scale_table(table)
    return table


def _check_scale_table(table: np.ndarray) -> None:
    """Refuse to run with a table that is not what the format defines (e.g. a wrongly edited constant)."""
    expected_ratio = 2.0 ** (1.0 / (1 << LOG2_SCALE_FRAC_BITS))
    ratios = table[1:] / table[:-1]
    if table[0] != 2.0**LOG2_SCALE_MIN or not np.allclose(ratios, expected_ratio, rtol=1e-4):
        raise RuntimeError("Laplace scale table is corrupt; check vcodec.entropy.constants and vcodec.format")
    if not math.isclose(table[-1], 2.0 ** (LOG2_SCALE_MIN + (SCALE_TABLE_SIZE - 1) / (1 << LOG2_SCALE_FRAC_BITS)), rel_tol=1e-4):
        raise RuntimeError("Laplace scale table has the wrong range")


SCALE_TABLE: np.ndarray = build_scale_table()
