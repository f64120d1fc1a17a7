"""The table model of frame format 7: narrow Laplaces as fixed categorical rows, built by integer arithmetic.

Why: constriction decodes a quantised Laplace at about 150 ns a symbol (its CDF is evaluated with `exp` and
searched), a categorical distribution of 14 given probabilities at about 45 ns. Nearly every latent of a
trained frame has a narrow Laplace (scale <= 1/2 on 99.9 % of the bench frames' positions), so format 7
codes those under a row of this table: the probabilities of the 2 R + 1 values around the rounded mean and
of one escape symbol (any other value, then coded under the Laplace itself). The rows hold the quantised
Laplace's own probabilities, so the rate is the same (the bench frames' streams: equal to 4 bytes).

The rows depend only on integers (the scale table's mantissas, the mean's 1/32 steps), and every value is
computed with integer arithmetic (a Taylor series for exp(-1/(64 b)), then powers in 32-bit fixed point):
the table is the same on every machine and libm, which the Laplace's `exp` does not promise.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from vcodec.entropy.constants import (
    LOG2_SCALE_FRAC_BITS,
    MEAN_FRAC_BITS,
    NARROW_MAX_LOG2_SCALE,
    NARROW_PROB_BITS,
    NARROW_RADIUS,
    SCALE_MANTISSAS_Q16,
)
from vcodec.format import LOG2_SCALE_MIN

# Scale indices 0 .. NARROW_SCALES - 1 (b <= 2^NARROW_MAX_LOG2_SCALE) have rows; one row per mean fraction.
NARROW_SCALES = ((NARROW_MAX_LOG2_SCALE - LOG2_SCALE_MIN) << LOG2_SCALE_FRAC_BITS) + 1
MEAN_FRACTIONS = 1 << MEAN_FRAC_BITS
ALPHABET = 2 * NARROW_RADIUS + 2  # values c - R .. c + R, then the escape
ESCAPE = ALPHABET - 1
_ONE = 1 << NARROW_PROB_BITS
_EDGE_STEPS = 2 * MEAN_FRACTIONS  # a value's interval edges lie on multiples of 1/64 from the mean


def narrow_rows(mean_index: np.ndarray, scale_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, centre) of each position: row = scale index * 32 + the mean's fraction (0 .. 31, from -1/2) where
    the scale has a row, else -1; centre = the rounded mean (ties up), the value of symbol R.

    The format's rule as docs/bitstream.md states it. The codec computes it in the compiled ARM
    (`table_row` in _arm_kernels.c, for encoder and decoder alike); tests hold the two equal."""
    mean_index = np.asarray(mean_index, dtype=np.int64)
    scale_index = np.asarray(scale_index, dtype=np.int64)
    half = MEAN_FRACTIONS // 2
    centre = np.floor_divide(mean_index + half, MEAN_FRACTIONS)
    fraction = mean_index - MEAN_FRACTIONS * centre + half
    rows = np.where(scale_index < NARROW_SCALES, scale_index * MEAN_FRACTIONS + fraction, -1)
    return rows, centre


def _exp_neg(numerator: int, denominator: int, bits: int = 64) -> int:
    """exp(-numerator / denominator) * 2^bits, for a ratio in [0, 1]: the alternating Taylor series in
    integers (each term floored), so the result is a function of the two integers alone."""
    one = 1 << bits
    x = (numerator << bits) // denominator
    total, term, k = 0, one, 0
    while term:
        total += -term if k % 2 else term
        k += 1
        term = term * x // (one * k)
    return total


def _tail_masses() -> np.ndarray:
    """tail[s, n] = P(X > n / 64) for a Laplace of scale b_s about 0, i.e. exp(-n / (64 b_s)) / 2, in units
    of 2^-NARROW_PROB_BITS (integers), n = 0 .. 64 (R + 1)."""
    ratios = []
    for s in range(NARROW_SCALES):
        mantissa = SCALE_MANTISSAS_Q16[s % (1 << LOG2_SCALE_FRAC_BITS)]
        exponent = LOG2_SCALE_MIN + (s >> LOG2_SCALE_FRAC_BITS)
        # b = mantissa 2^(exponent - 16), so 1 / (64 b) = 2^(10 - exponent) / mantissa, at most 1
        ratios.append(_exp_neg(1 << (10 - exponent), mantissa) >> (64 - NARROW_PROB_BITS))
    ratio = np.array(ratios, dtype=np.uint64)
    steps = _EDGE_STEPS * (NARROW_RADIUS + 1)
    powers = np.empty((NARROW_SCALES, steps + 1), dtype=np.uint64)
    powers[:, 0] = _ONE
    for n in range(1, steps + 1):  # products of two numbers below 2^32 + 1: exact in 64 bits
        powers[:, n] = (powers[:, n - 1] * ratio) >> np.uint64(NARROW_PROB_BITS)
    return (powers >> np.uint64(1)).astype(np.int64)


@cache
def narrow_table() -> np.ndarray:
    """(NARROW_SCALES * 32, ALPHABET) float64: row s * 32 + f holds, for a Laplace of scale b_s and mean
    c + (f - 16) / 32, the probabilities of c - R .. c + R (the mass of each value's unit interval) and of
    the escape (the rest); each at least 2^-32, all exact multiples of 2^-32 (what constriction's
    categorical model is given, as floats)."""
    tail = _tail_masses()
    fraction = np.arange(MEAN_FRACTIONS)[:, None]
    offset = np.arange(-NARROW_RADIUS, NARROW_RADIUS + 1)[None, :]
    low = _EDGE_STEPS * offset - 2 * fraction  # the interval's edges from the mean, in 1/64
    high = low + _EDGE_STEPS
    below, above = tail[:, np.abs(low)], tail[:, np.abs(high)]  # (scales, fractions, values)
    mass = np.where(low >= 0, below - above, np.where(high <= 0, above - below, _ONE - below - above))
    mass = np.maximum(mass, 1)
    escape = np.maximum(_ONE - mass.sum(axis=-1, keepdims=True), 1)
    table = np.concatenate([mass, escape], axis=-1).reshape(-1, ALPHABET).astype(np.float64) / _ONE
    table.flags.writeable = False
    return table
