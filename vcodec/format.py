"""The one table of limits that every part of vcodec agrees on (input, encoder, frame header, container).

They come from real use: CTC class A1 is 3840x2160 and 8K UHD (7680x4320) exists, so a frame may be up to
8192 samples per side and 8192 x 4352 samples in all; the frame header stores half sizes in 13 bits.
Checked before any work: an encode refuses a frame the bitstream could not describe before training.
"""

from __future__ import annotations

MAX_FRAME_SIDE = 8192                 # width and height, in luma samples (even)
MAX_FRAME_PIXELS = 8192 * 4352        # the decoder's latent canvas then stays below about 0.5 GB
MIN_FRAME_SIDE = 2                    # 4:2:0 needs even sizes


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
