"""What the frame format fixes, in the bottom layer: limits, value ranges and stored enumerations.

Every package that must agree with the bitstream takes these from here (the float model, the entropy
coders, the frame header, the input readers), so none of them has to import another for a number.
Changing a value or reordering a tuple changes what existing files mean: bump FORMAT_VERSION in
vcodec.bitstream.frame_header. The fixed-point arithmetic of the coders (shifts, clamps, table
resolutions) stays with them, in vcodec.entropy.constants.

The frame-size limits come from real use: CTC class A1 is 3840x2160 and 8K UHD (7680x4320) exists, so a
frame may be up to 8192 samples per side and 8192 x 4352 samples in all; the frame header stores half
sizes in 13 bits. Checked before any work: an encode refuses a frame the bitstream could not describe
before training.
"""

from __future__ import annotations

MAX_FRAME_SIDE = 8192                 # width and height, in luma samples (even)
MAX_FRAME_PIXELS = 8192 * 4352        # the decoder's latent canvas then stays below about 0.5 GB
MIN_FRAME_SIDE = 2                    # 4:2:0 needs even sizes

# Latent symbols (integers) are coded on this inclusive support; training clamps latents into it.
LATENT_MIN = -128
LATENT_MAX = 127

# The Laplace scale b of a latent lies in [2^LOG2_SCALE_MIN, 2^LOG2_SCALE_MAX]: the range of the coders'
# scale table, and the clamp of the rate that training minimises.
LOG2_SCALE_MIN = -6
LOG2_SCALE_MAX = 6

# The ARM reads at most this many causal neighbours: the causal half of a 9x9 window.
MAX_ARM_CONTEXT = 40

# Frame format 4 codes the latents in 1..this many independent substreams (a 4-bit header field).
MAX_LATENT_SUBSTREAMS = 16

# Quantisation steps of the network parameters are 2^-k, k in this range (a 5-bit header field).
PARAM_STEP_EXP_MIN = 0
PARAM_STEP_EXP_MAX = 16
# Parameter coder: a zero-mean Laplace per group, its scale b = 2^(index / 16), index in 0..255.
PARAM_SCALE_INDEX_MAX = 255

# Stored as an order: never reorder them (tests freeze them), only append. The parameters of each module
# form these two groups; header and parameter stream list the groups module-major.
MODULES: tuple[str, ...] = ("arm", "upsampling", "synthesis")
PARAM_KINDS: tuple[str, ...] = ("weight", "bias")
# From this frame format version, every upsampling and synthesis tensor is a parameter group of its own
# (the ARM keeps one group per kind): vcodec.entropy.param_coder.parameter_groups.
PER_TENSOR_GROUPS_VERSION = 5
# From this frame format version the upsampling and synthesis run in fixed point (vcodec.model.fixed_point):
# activations are integers in units of 2^-PICTURE_FRAC_BITS, clamped to +-PICTURE_ACT_LIMIT (+-1024 in
# value), so that the decoded picture is exact on any machine. PICTURE_FRAC_BITS must stay >=
# PARAM_STEP_EXP_MAX (biases then enter a layer's sums as integers). 20 fractional bits: against the
# float model, 0.01-0.05 % of samples one code value away (16 bits: 0.1-0.5 %, over the encoder's check).
FIXED_POINT_PICTURE_VERSION = 6
PICTURE_FRAC_BITS = 20
PICTURE_ACT_LIMIT = 1 << 30
# From this frame format version a latent with a narrow Laplace is coded under the table model
# (vcodec.entropy.narrow_model): the same rate, decoded about 3x faster by the range coder.
TABLE_MODEL_VERSION = 7


def check_frame_size(width: int, height: int, error: type[Exception], where: str = "") -> None:
    """Refuse a frame size that a vcodec frame cannot have, naming the limit it breaks.

    The one check of frame sizes: readers of video raise their input error, the container its bitstream
    error, so each caller says which kind of mistake it is; `where` (a file name) prefixes the message.
    """
    prefix = f"{where}: " if where else ""
    if not (MIN_FRAME_SIDE <= width <= MAX_FRAME_SIDE and MIN_FRAME_SIDE <= height <= MAX_FRAME_SIDE):
        raise error(
            f"{prefix}frame size {width}x{height} is out of range: each side must be "
            f"{MIN_FRAME_SIDE}..{MAX_FRAME_SIDE} samples"
        )
    if width * height > MAX_FRAME_PIXELS:
        raise error(
            f"{prefix}frame size {width}x{height} is too large: {width * height} samples, at most "
            f"{MAX_FRAME_PIXELS} ({MAX_FRAME_SIDE}x{MAX_FRAME_PIXELS // MAX_FRAME_SIDE}) in a frame"
        )
    if width % 2 or height % 2:
        raise error(f"{prefix}frame size {width}x{height} is odd; YUV 4:2:0 needs even width and height")
