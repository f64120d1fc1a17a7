"""Every fixed-point constant of the codec in one place: shifts, ranges and table sizes.

Changing any value here changes the bitstream semantics: bump FORMAT_VERSION in vcodec.bitstream.
"""

from __future__ import annotations

# Latent symbols (integers) are coded on this inclusive support; training clamps latents into it.
LATENT_MIN = -128
LATENT_MAX = 127

# Integer ARM: activations carry ACT_FRAC_BITS fractional bits and are clamped to +-ACT_LIMIT, so that
# every sum of products stays below 2^53 and is computed exactly in float64 whatever the BLAS order:
# |x| <= 2^24, |w| <= 2^15, width <= 64  =>  |sum| <= 2^45.
ACT_FRAC_BITS = 8
ACT_LIMIT = 1 << 24
PARAM_INT_LIMIT = (1 << 15) - 1  # quantised parameters are integers in [-limit, limit]

# Quantisation steps of the network parameters are 2^-k, k in this range.
PARAM_STEP_EXP_MIN = 0
PARAM_STEP_EXP_MAX = 16

# Laplace mean: snapped to a multiple of 2^-MEAN_FRAC_BITS, within +-MEAN_LIMIT.
MEAN_FRAC_BITS = 5
MEAN_LIMIT = 128

# Laplace scale: b = 2^(LOG2_SCALE_MIN + i / 2^LOG2_SCALE_FRAC_BITS), i = 0 .. SCALE_TABLE_SIZE - 1.
LOG2_SCALE_FRAC_BITS = 4
LOG2_SCALE_MIN = -6
LOG2_SCALE_MAX = 6
SCALE_TABLE_SIZE = (LOG2_SCALE_MAX - LOG2_SCALE_MIN) * (1 << LOG2_SCALE_FRAC_BITS) + 1

# round(2^16 * 2^(j/16)) for j = 0..15, written out so no libm call can change the scale tables.
SCALE_MANTISSAS_Q16: tuple[int, ...] = (
    65536, 68438, 71468, 74632, 77936, 81386, 84990, 88752,
    92682, 96785, 101070, 105545, 110218, 115098, 120194, 125515,
)

# Parameter coder: a zero-mean Laplace per module, its scale b = 2^(index / 16), index in 0..255.
PARAM_SCALE_INDEX_MAX = 255
