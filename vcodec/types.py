"""Shared data types: the YUV420 frame every module exchanges, and the one error type of bad input."""

from __future__ import annotations

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
