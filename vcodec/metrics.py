"""Quality metrics computed from decoded output against the source (HM conventions)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vcodec.types import Frame

# PSNR-YUV weights of the CTC tradition: (6*Y + U + V) / 8.
YUV_WEIGHTS: tuple[float, float, float] = (6.0, 1.0, 1.0)


def peak_value(bitdepth: int, hm_peak: bool = True) -> float:
    """HM's peak is 255 << (bitdepth - 8) (1020 at 10 bit); `hm_peak=False` gives 2^bitdepth - 1."""
    return float(255 << (bitdepth - 8)) if hm_peak else float((1 << bitdepth) - 1)


def plane_mse(a: np.ndarray, b: np.ndarray) -> float:
    diff = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(diff * diff))


def psnr_from_mse(mse: float, peak: float) -> float:
    """PSNR in dB; a perfect match is reported as 100 dB (as HM's 999.99 would break averages)."""
    if mse <= 0.0:
        return 100.0
    return 10.0 * math.log10(peak * peak / mse)


@dataclass(frozen=True)
class FramePsnr:
    y: float
    u: float
    v: float

    @property
    def yuv(self) -> float:
        wy, wu, wv = YUV_WEIGHTS
        return (wy * self.y + wu * self.u + wv * self.v) / (wy + wu + wv)


def frame_psnr(reference: Frame, decoded: Frame, hm_peak: bool = True) -> FramePsnr:
    """Per-plane PSNR of a decoded frame against its source."""
    if reference.bitdepth != decoded.bitdepth or reference.y.shape != decoded.y.shape:
        raise ValueError("frames differ in size or bit depth")
    peak = peak_value(reference.bitdepth, hm_peak)
    values = [psnr_from_mse(plane_mse(a, b), peak) for a, b in zip(reference.planes(), decoded.planes())]
    return FramePsnr(*values)
