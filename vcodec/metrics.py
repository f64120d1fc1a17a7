"""Quality metrics computed from decoded output against the source (HM conventions)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vcodec.types import Frame

# PSNR-YUV weights of the CTC tradition: (6*Y + U + V) / 8.
YUV_WEIGHTS: tuple[float, float, float] = (6.0, 1.0, 1.0)


def weighted_yuv(y: float, u: float, v: float) -> float:
    """The CTC's YUV combination of per-plane figures: (6 Y + U + V) / 8."""
    wy, wu, wv = YUV_WEIGHTS
    return (wy * y + wu * u + wv * v) / (wy + wu + wv)


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
        return weighted_yuv(self.y, self.u, self.v)


def frame_psnr(reference: Frame, decoded: Frame, hm_peak: bool = True) -> FramePsnr:
    """Per-plane PSNR of a decoded frame against its source."""
    if reference.bitdepth != decoded.bitdepth or reference.y.shape != decoded.y.shape:
        raise ValueError("frames differ in size or bit depth")
    peak = peak_value(reference.bitdepth, hm_peak)
    values = [psnr_from_mse(plane_mse(a, b), peak) for a, b in zip(reference.planes(), decoded.planes())]
    return FramePsnr(*values)


@dataclass(frozen=True)
class RgbPsnr:
    """PSNR of an RGB picture: per channel, and `rgb` of the mean squared error over all three channels (the
    PSNR-RGB of image coding papers, which weights the channels alike)."""

    r: float
    g: float
    b: float
    rgb: float


def rgb_psnr(reference: np.ndarray, decoded: np.ndarray, peak: float) -> RgbPsnr:
    """PSNR of H x W x 3 RGB samples at `peak` (255 for 8-bit pictures, 65535 for 16-bit)."""
    if reference.shape != decoded.shape or reference.ndim != 3 or reference.shape[2] != 3:
        raise ValueError("pictures differ in size or are not RGB")
    errors = [plane_mse(reference[..., c], decoded[..., c]) for c in range(3)]
    return RgbPsnr(*(psnr_from_mse(e, peak) for e in errors), psnr_from_mse(sum(errors) / 3, peak))


# MS-SSIM with its standard 5 scales and 11-tap window needs the smaller side to exceed (11 - 1) * 2**4.
MS_SSIM_MIN_SIDE = 161


def ms_ssim_y(reference: Frame, decoded: Frame) -> float | None:
    """MS-SSIM of the luma plane (5 scales, data range 2^bitdepth - 1), as pytorch-msssim computes it.

    Returns None when the picture is too small for the 5 standard scales: a value computed on fewer
    scales would not be comparable with anyone else's MS-SSIM.
    """
    if reference.bitdepth != decoded.bitdepth or reference.y.shape != decoded.y.shape:
        raise ValueError("frames differ in size or bit depth")
    if min(reference.y.shape) < MS_SSIM_MIN_SIDE:
        return None
    import torch
    from pytorch_msssim import ms_ssim

    ref = torch.from_numpy(reference.y.astype(np.float32))[None, None]
    dec = torch.from_numpy(decoded.y.astype(np.float32))[None, None]
    # Its small convolutions run 20x slower on several intra-op threads of a busy CPU than on one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            return float(ms_ssim(ref, dec, data_range=float(reference.max_value)))
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class SequenceQuality:
    """A sequence's quality and rate: PSNRs are the mean of its frames' PSNRs, bits the sum of its frames' bits.

    This is HM's convention (the `a` line of its summary): averaging PSNRs, not MSEs, so one very good
    frame counts as much as one very bad frame.
    """

    frames: int
    bits: int
    psnr_y: float
    psnr_u: float
    psnr_v: float
    ms_ssim_y: float | None = None

    @property
    def psnr_yuv(self) -> float:
        return weighted_yuv(self.psnr_y, self.psnr_u, self.psnr_v)


def aggregate_sequence(
    frame_psnrs: list[FramePsnr], frame_bits: list[int], frame_ms_ssim: list[float | None] | None = None
) -> SequenceQuality:
    """Mean of the frame PSNRs, sum of the frame bits; MS-SSIM is averaged only if every frame has one."""
    if not frame_psnrs or len(frame_psnrs) != len(frame_bits):
        raise ValueError("need one bit count per frame PSNR, and at least one frame")
    count = len(frame_psnrs)
    ms_ssim_mean = None
    if frame_ms_ssim is not None and len(frame_ms_ssim) == count and all(v is not None for v in frame_ms_ssim):
        ms_ssim_mean = float(np.mean([float(v) for v in frame_ms_ssim if v is not None]))
    return SequenceQuality(
        frames=count,
        bits=int(sum(frame_bits)),
        psnr_y=float(np.mean([p.y for p in frame_psnrs])),
        psnr_u=float(np.mean([p.u for p in frame_psnrs])),
        psnr_v=float(np.mean([p.v for p in frame_psnrs])),
        ms_ssim_y=ms_ssim_mean,
    )


def bits_per_pixel(bits: int, width: int, height: int, frames: int) -> float:
    """Rate per luma pixel over all coded frames (chroma samples are not counted as pixels)."""
    return bits / float(width * height * frames)


def kilobits_per_second(bits: int, frames: int, fps: float) -> float:
    """HM's bitrate: bits per frame times the frame rate, in kbit/s (1 kbit = 1000 bits)."""
    return bits / frames * fps / 1000.0


def frame_mse(reference: Frame, decoded: Frame) -> tuple[float, float, float]:
    """Per-plane MSE (Y, U, V): what a results store keeps, so PSNR can be derived for either peak later."""
    if reference.bitdepth != decoded.bitdepth or reference.y.shape != decoded.y.shape:
        raise ValueError("frames differ in size or bit depth")
    y, u, v = (plane_mse(a, b) for a, b in zip(reference.planes(), decoded.planes()))
    return y, u, v


def mse_from_psnr(psnr: float, peak: float) -> float:
    """Inverse of `psnr_from_mse`, for results that arrive as PSNRs (HM logs); 100 dB maps back to 0."""
    if psnr >= 100.0:
        return 0.0
    return peak * peak / 10.0 ** (psnr / 10.0)


def psnr_from_mses(mses: tuple[float, float, float], bitdepth: int, hm_peak: bool = True) -> FramePsnr:
    peak = peak_value(bitdepth, hm_peak)
    y, u, v = (psnr_from_mse(m, peak) for m in mses)
    return FramePsnr(y, u, v)
