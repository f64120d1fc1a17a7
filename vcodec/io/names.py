"""Size, frame rate and bit depth read from CTC-style file names.

Common test conditions name raw files after what they hold, in a few dialects:
`BasketballPass_416x240_50.yuv`, `CatRobot_3840x2160_60fps_10bit_420.yuv`,
`D-BQSquare_416x240_60p_yuv420_8b.yuv`, `Hubble_416x240_30_10bit_420.yuv`. The name is split on
underscores; the first `WxH` token is the size, a number right after it (bare, or ending in `fps`, `p`
or `hz`) the frame rate, and a token such as `10bit`, `8b` or `yuv420p10le` the bit depth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import PurePath

_SIZE = re.compile(r"^(\d+)x(\d+)p?$", re.IGNORECASE)
_FPS = re.compile(r"^(\d+(?:\.\d+)?)(?:fps|p|hz)?$", re.IGNORECASE)
_BITS = re.compile(r"^(\d+)b(?:its?)?$", re.IGNORECASE)
_PIX_FMT = re.compile(r"^yuv(4\d\d)p?(\d+)?(?:le|be)?$", re.IGNORECASE)
_CHROMA = re.compile(r"^(?:yuv)?(4[24][024])$", re.IGNORECASE)


@dataclass(frozen=True)
class NameHints:
    """What a file name says; None where it says nothing."""

    width: int | None = None
    height: int | None = None
    fps: Fraction | None = None
    bitdepth: int | None = None
    chroma: str | None = None


def infer_from_name(path: str | PurePath) -> NameHints:
    """Read the CTC naming conventions; a name that follows none of them gives empty hints."""
    tokens = PurePath(path).stem.split("_")
    width = height = bitdepth = None
    fps = None
    chroma = None
    size_at = None
    for i, token in enumerate(tokens):
        match = _SIZE.match(token)
        if match:
            width, height = int(match.group(1)), int(match.group(2))
            size_at = i
            break
    if size_at is not None and size_at + 1 < len(tokens):
        match = _FPS.match(tokens[size_at + 1])
        if match and float(match.group(1)) > 0 and not _CHROMA.match(tokens[size_at + 1]):
            fps = Fraction(match.group(1))
    for token in tokens[1:]:
        if (match := _BITS.match(token)) is not None:
            bitdepth = int(match.group(1))
        elif (match := _PIX_FMT.match(token)) is not None:
            chroma = match.group(1)
            if match.group(2):
                bitdepth = int(match.group(2))
            elif token.lower().endswith("p"):
                bitdepth = bitdepth or 8
        elif (match := _CHROMA.match(token)) is not None:
            chroma = match.group(1)
    return NameHints(width, height, fps, bitdepth, chroma)
