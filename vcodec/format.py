"""The one table of limits that every part of vcodec agrees on (input, encoder, frame header, container).

They come from real use: CTC class A1 is 3840x2160 and 8K UHD (7680x4320) exists, so a frame may be up to
8192 samples per side and 8192 x 4352 samples in all; the frame header stores half sizes in 13 bits.
Checked before any work: an encode refuses a frame the bitstream could not describe before training.
"""

from __future__ import annotations

MAX_FRAME_SIDE = 8192                 # width and height, in luma samples (even)
MAX_FRAME_PIXELS = 8192 * 4352        # the decoder's latent canvas then stays below about 0.5 GB
MIN_FRAME_SIDE = 2                    # 4:2:0 needs even sizes
