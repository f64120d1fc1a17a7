"""Shared data types: the YUV420 frame every module exchanges, and the one error type of bad input."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


class VcodecError(Exception):
    """Base of every error a user can cause (bad input, bad files); the CLI prints it on one line."""


class BitstreamError(VcodecError):
    """A frame bitstream or container is truncated, corrupted or holds values out of range."""


SUPPORTED_BITDEPTHS: tuple[int, ...] = (8, 10)


@dataclass(frozen=True)
class Frame:
    """One YUV 4:2:0 picture: Y is H x W, U and V are H/2 x W/2, samples as uint16 at `bitdepth` bits.

    Samples are kept as integers (not floats) so that a decoded frame can be compared bit for bit.
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    bitdepth: int

    def __post_init__(self) -> None:
        if self.bitdepth not in SUPPORTED_BITDEPTHS:
            raise VcodecError(f"unsupported bit depth {self.bitdepth} (supported: 8, 10)")
        h, w = self.y.shape
        if h % 2 or w % 2:
            raise VcodecError(f"frame size {w}x{h} is odd; YUV 4:2:0 needs even width and height")
        if self.u.shape != (h // 2, w // 2) or self.v.shape != (h // 2, w // 2):
            raise VcodecError(f"chroma planes {self.u.shape}, {self.v.shape} do not match luma {w}x{h} in 4:2:0")

    @property
    def width(self) -> int:
        return int(self.y.shape[1])

    @property
    def height(self) -> int:
        return int(self.y.shape[0])

    @property
    def max_value(self) -> int:
        return (1 << self.bitdepth) - 1

    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.y, self.u, self.v


RATE_TARGET_METRICS: tuple[str, ...] = ("bpp", "psnr")


@dataclass(frozen=True)
class RateTarget:
    """What rate control should make a frame reach: `metric` "bpp" (bits of the frame bitstream per luma
    pixel) or "psnr" (PSNR-YUV 6:1:1 of the decoded frame, dB). Torch-free, so that the command line can
    check it before anything heavy is imported."""

    metric: str
    value: float

    def __post_init__(self) -> None:
        if self.metric not in RATE_TARGET_METRICS:
            raise VcodecError(f"unknown rate target {self.metric!r} (one of {', '.join(RATE_TARGET_METRICS)})")
        if not (math.isfinite(self.value) and self.value > 0):
            raise VcodecError(f"a {self.metric} target must be a positive number, got {self.value}")

    def measure(self, bpp: float, psnr_yuv: float) -> float:
        """The searched quantity: ln(bpp), in which rate is near linear in ln(lambda), or the PSNR in dB."""
        return math.log(bpp) if self.metric == "bpp" else psnr_yuv

    @property
    def goal(self) -> float:
        return math.log(self.value) if self.metric == "bpp" else self.value

    def describe(self) -> str:
        return f"{self.value:g} bpp" if self.metric == "bpp" else f"{self.value:g} dB PSNR-YUV"


# How an RGB picture became YUV: the YCbCr matrix (ITU-R BT.601 or BT.709 luma weights) and the range of the
# codes (limited: Y 16..235, Cb/Cr 16..240 at 8 bits; full: 0..255). Container version 3 stores each as an
# index into its tuple: append, never reorder (tests/test_container.py freezes them).
COLOR_MATRICES: tuple[str, ...] = ("bt601", "bt709")
COLOR_RANGES: tuple[str, ...] = ("limited", "full")


@dataclass(frozen=True)
class ColorConversion:
    """The RGB <-> YUV conversion of a picture. The default is JPEG's (JFIF: BT.601, full range), which
    libavif also uses for still pictures: full range keeps all 256 codes of an 8-bit picture, so that the
    conversion alone costs least. A YUV PSNR means something only with its conversion (and an RGB one
    differs by it too): it is named in `vcodec encode --help` and stored in the file."""

    matrix: str = "bt601"
    range: str = "full"

    def __post_init__(self) -> None:
        if self.matrix not in COLOR_MATRICES:
            raise VcodecError(f"unknown colour matrix {self.matrix!r} (known: {', '.join(COLOR_MATRICES)})")
        if self.range not in COLOR_RANGES:
            raise VcodecError(f"unknown colour range {self.range!r} (known: {', '.join(COLOR_RANGES)})")

    def __str__(self) -> str:
        return f"BT.{self.matrix[2:]} {self.range} range"


@dataclass(frozen=True)
class RgbPicture:
    """A sequence coded from an RGB (or grey) picture: how to convert it back, and the picture's own size.

    4:2:0 needs even sizes: a picture of odd width or height is coded one column or row larger (its last
    one repeated), and cropped back to `width` x `height` when it is decoded to a picture."""

    conversion: ColorConversion
    width: int
    height: int

    def coded_size(self) -> tuple[int, int]:
        return self.width + self.width % 2, self.height + self.height % 2
