"""The fixed-point arithmetic of the integer ARM and the probability tables: shifts, clamps, table sizes.

Changing any value here changes the bitstream semantics: bump FORMAT_VERSION in vcodec.bitstream. The
ranges that the model and the frame header share with the coders (latent symbols, Laplace scales,
parameter steps) are in vcodec.format, below both.
"""

from __future__ import annotations

from vcodec.format import LOG2_SCALE_MAX, LOG2_SCALE_MIN

# Integer ARM: activations carry ACT_FRAC_BITS fractional bits and are clamped to +-ACT_LIMIT, so that
# every sum of products stays below 2^53 and is computed exactly in float64 whatever the BLAS order:
# |x| <= 2^24, |w| <= 2^15, width <= 64  =>  |sum| <= 2^45.
ACT_FRAC_BITS = 8
ACT_LIMIT = 1 << 24
PARAM_INT_LIMIT = (1 << 15) - 1  # quantised parameters are integers in [-limit, limit]

# Laplace mean: snapped to a multiple of 2^-MEAN_FRAC_BITS, within +-MEAN_LIMIT.
MEAN_FRAC_BITS = 5
MEAN_LIMIT = 128

# Laplace scale: b = 2^(LOG2_SCALE_MIN + i / 2^LOG2_SCALE_FRAC_BITS), i = 0 .. SCALE_TABLE_SIZE - 1.
LOG2_SCALE_FRAC_BITS = 4
SCALE_TABLE_SIZE = (LOG2_SCALE_MAX - LOG2_SCALE_MIN) * (1 << LOG2_SCALE_FRAC_BITS) + 1

# round(2^16 * 2^(j/16)) for j = 0..15, written out so no libm call can change the scale tables.
SCALE_MANTISSAS_Q16: tuple[int, ...] = (
    65536, 68438, 71468, 74632, 77936, 81386, 84990, 88752,
    92682, 96785, 101070, 105545, 110218, 115098, 120194, 125515,
)

# Frame format 7 codes a latent whose Laplace is narrow (scale <= 2^NARROW_MAX_LOG2_SCALE) under a table
# model (vcodec.entropy.narrow_model): the 2 NARROW_RADIUS + 1 values around its rounded mean, and one
# escape symbol for any other value (then coded under the Laplace). Probabilities in units of
# 2^-NARROW_PROB_BITS, built by integer arithmetic alone.
NARROW_MAX_LOG2_SCALE = -1
NARROW_RADIUS = 6
NARROW_PROB_BITS = 32
