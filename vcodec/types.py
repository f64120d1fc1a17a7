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
