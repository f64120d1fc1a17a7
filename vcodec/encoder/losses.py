"""Distortion terms of the training loss, on the 4:2:0 planes normalised to [0, 1].

The planes are weighted 6:1:1 (Y:U:V), the weights of PSNR-YUV, so the encoder optimises what is
reported. Losses follow "Redefining visual quality: the impact of loss functions on INR-based image
compression": mse, l1, logcosh, logcosh+ssim (alpha 0.01), l1+ssim (alpha 0.2).
"""

from __future__ import annotations

import math

import torch
from pytorch_msssim import ssim

from vcodec.metrics import YUV_WEIGHTS

SSIM_ALPHA: dict[str, float] = {"logcosh+ssim": 0.01, "l1+ssim": 0.2}


def _logcosh(error: torch.Tensor) -> torch.Tensor:
    """log(cosh(x)) = |x| + log1p(exp(-2|x|)) - log 2, stable for any x."""
    magnitude = error.abs()
    return (magnitude + torch.log1p(torch.exp(-2.0 * magnitude)) - math.log(2.0)).mean()


def _pixel_loss(kind: str, decoded: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    error = decoded - target
    if kind == "mse":
        return (error * error).mean()
    if kind == "l1":
        return error.abs().mean()
    return _logcosh(error)


def _ssim_window(plane: torch.Tensor) -> int:
    smallest = min(plane.shape[-2:])
    return max(3, min(11, smallest - 1 if smallest % 2 == 0 else smallest))


def plane_loss(loss: str, decoded: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Loss of one (1, 1, h, w) plane."""
    base = loss.split("+")[0]
    value = _pixel_loss(base, decoded, target)
    alpha = SSIM_ALPHA.get(loss)
    if alpha is None:
        return value
    similarity = ssim(decoded, target, data_range=1.0, size_average=True, win_size=_ssim_window(target))
    return (1.0 - alpha) * value + alpha * (1.0 - similarity)


def distortion(loss: str, luma: torch.Tensor, chroma: torch.Tensor,
               target_luma: torch.Tensor, target_chroma: torch.Tensor) -> torch.Tensor:
    wy, wu, wv = YUV_WEIGHTS
    if loss == "logmse":
        return log_mse_yuv(luma, chroma, target_luma, target_chroma)
    total = wy * plane_loss(loss, luma, target_luma)
    total = total + wu * plane_loss(loss, chroma[:, :1], target_chroma[:, :1])
    total = total + wv * plane_loss(loss, chroma[:, 1:], target_chroma[:, 1:])
    return total / (wy + wu + wv)


def log_mse_yuv(luma: torch.Tensor, chroma: torch.Tensor, target_luma: torch.Tensor,
                target_chroma: torch.Tensor) -> torch.Tensor:
    """exp((6 log MSE_Y + log MSE_U + log MSE_V) / 8): the MSE that PSNR-YUV reports, since PSNR-YUV
    averages the planes' PSNRs, i.e. their log MSEs. Where the three MSEs are equal it is their weighted
    mean with the same gradient, so lambda keeps its meaning; a plane with a lower MSE (chroma, usually)
    weighs more, as it does in the metric."""
    planes = (
        _pixel_loss("mse", luma, target_luma),
        _pixel_loss("mse", chroma[:, :1], target_chroma[:, :1]),
        _pixel_loss("mse", chroma[:, 1:], target_chroma[:, 1:]),
    )
    logs = sum(w * torch.log(m.clamp_min(1e-12)) for w, m in zip(YUV_WEIGHTS, planes))
    return torch.exp(logs / sum(YUV_WEIGHTS))


def mse_yuv(luma: torch.Tensor, chroma: torch.Tensor, target_luma: torch.Tensor,
            target_chroma: torch.Tensor) -> torch.Tensor:
    """The 6:1:1-weighted MSE, whatever the training loss (used for progress and quantisation)."""
    return distortion("mse", luma, chroma, target_luma, target_chroma)
