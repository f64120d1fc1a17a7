"""Pixel formats, frame sizes and the byte layout of one planar YUV 4:2:0 frame."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import numpy as np

from vcodec.format import check_frame_size
from vcodec.io.errors import InputError, OptionError
from vcodec.types import SUPPORTED_BITDEPTHS, Frame, RgbPicture

# FFmpeg's names for the two pixel formats vcodec codes, and the bit depth of each.
PIXEL_FORMATS: dict[str, int] = {"yuv420p": 8, "yuv420p10le": 10}

# FFmpeg's rawvideo demuxer assumes 25 fps when nothing says otherwise; so does vcodec.
DEFAULT_FPS = Fraction(25)

# File suffixes of raw planar YUV, read and written alike (`.yuv` is the usual one).
RAW_SUFFIXES = frozenset({".yuv", ".raw", ".420", ".i420"})

_SIZE = re.compile(r"^\s*(\d+)\s*[xX*]\s*(\d+)\s*$")


class ByteSink(Protocol):
    """Where written frames go: an open binary file, or stdout written without a buffer."""

    def write(self, data: bytes, /) -> int: ...


@dataclass(frozen=True)
class VideoInfo:
    """What a reader knows about a sequence before decoding it; `frame_count` is None when unknown.
    `picture`: the sequence is an RGB picture converted to YUV (vcodec.io.picture), None for YUV video."""

    width: int
    height: int
    bitdepth: int
    fps: Fraction
    frame_count: int | None = None
    picture: RgbPicture | None = None

    @property
    def pix_fmt(self) -> str:
        return pix_fmt_for_bitdepth(self.bitdepth)

    @property
    def frame_bytes(self) -> int:
        return frame_bytes(self.width, self.height, self.bitdepth)


def pix_fmt_for_bitdepth(bitdepth: int) -> str:
    for name, depth in PIXEL_FORMATS.items():
        if depth == bitdepth:
            return name
    raise InputError(f"unsupported bit depth {bitdepth} (supported: {', '.join(map(str, SUPPORTED_BITDEPTHS))})")


def bitdepth_of_pix_fmt(pix_fmt: str) -> int:
    """Bit depth of an FFmpeg pixel-format name; anything but 4:2:0 at 8 or 10 bits is refused."""
    name = pix_fmt.strip().lower()
    if name not in PIXEL_FORMATS:
        raise InputError(f"unsupported pixel format {pix_fmt!r} (supported: {', '.join(PIXEL_FORMATS)})")
    return PIXEL_FORMATS[name]


def parse_size(text: str) -> tuple[int, int]:
    """`WxH` as in ffmpeg's `-video_size`, within the limits of `vcodec.format`."""
    match = _SIZE.match(text)
    if not match:
        raise OptionError(f"invalid size {text!r}: expected WIDTHxHEIGHT, e.g. 1920x1080")
    width, height = int(match.group(1)), int(match.group(2))
    check_frame_size(width, height, InputError)
    return width, height


def parse_fps(text: str) -> Fraction:
    """A frame rate as `50`, `29.97` or `30000/1001`."""
    try:
        fps = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise OptionError(f"invalid frame rate {text!r}: expected e.g. 50, 29.97 or 30000/1001") from None
    if fps <= 0:
        raise OptionError(f"invalid frame rate {text!r}: it must be positive")
    return fps


def frame_bytes(width: int, height: int, bitdepth: int) -> int:
    """Bytes of one planar frame: Y then U then V, one byte per sample at 8 bits, two (LE) above."""
    samples = width * height + 2 * (width // 2) * (height // 2)
    return samples * (1 if bitdepth == 8 else 2)


def frame_from_bytes(data: bytes | bytearray | memoryview, width: int, height: int, bitdepth: int) -> Frame:
    """Parse one planar frame, refusing samples above the bit depth (a sign of a wrong pix_fmt)."""
    dtype = np.uint8 if bitdepth == 8 else np.dtype("<u2")
    samples = np.frombuffer(data, dtype=dtype)
    luma = width * height
    chroma = (width // 2) * (height // 2)
    if samples.size != luma + 2 * chroma:
        raise InputError(f"frame holds {len(data)} bytes, expected {frame_bytes(width, height, bitdepth)}")
    if bitdepth > 8:
        peak = int(samples.max(initial=0))
        if peak >= 1 << bitdepth:
            raise InputError(
                f"sample value {peak} does not fit in {bitdepth} bits: is the input 16-bit or big-endian, "
                "or is --pix-fmt wrong?"
            )
    planes = samples.astype(np.uint16)
    y = planes[:luma].reshape(height, width)
    u = planes[luma : luma + chroma].reshape(height // 2, width // 2)
    v = planes[luma + chroma :].reshape(height // 2, width // 2)
    return Frame(y, u, v, bitdepth)


def frame_to_bytes(frame: Frame) -> bytes:
    """Planar bytes of a frame at its own bit depth (10-bit as 2-byte little-endian)."""
    dtype = np.uint8 if frame.bitdepth == 8 else np.dtype("<u2")
    return b"".join(np.ascontiguousarray(plane, dtype=dtype).tobytes() for plane in frame.planes())
