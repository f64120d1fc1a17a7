"""The whole per-frame model: latent grids + ARM + upsampling + synthesis, and its MAC count."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from vcodec.config import ArchConfig
from vcodec.entropy.constants import LATENT_MAX, LATENT_MIN
from vcodec.model.arm import Arm, laplace_bits
from vcodec.model.latents import grid_sizes
from vcodec.model.synthesis import Synthesis, to_420
from vcodec.model.upsampling import Upsampling
from vcodec.types import Frame

QUANTIZERS: tuple[str, ...] = ("noise", "softround", "ste", "round")
SOFTROUND_TEMPERATURE = 0.3  # where no schedule gives one (training anneals the preset's own)


class RoundWithEpsilonGradient(torch.autograd.Function):
    """Forward: true rounding. Backward: the gradient scaled by epsilon (the paper's epsilon-STE)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, epsilon: float) -> torch.Tensor:
        ctx.epsilon = epsilon
        return torch.round(x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.epsilon, None


def soft_round(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """A differentiable rounding (Agustsson & Theis 2020, used by C3 / Cool-chic 3): tends to round(x) as
    the temperature goes to 0 and to x as it grows."""
    floor = torch.floor(x)
    return floor + 0.5 + torch.tanh((x - floor - 0.5) / temperature) / (2.0 * math.tanh(0.5 / temperature))


class FrameModel(nn.Module):
    def __init__(self, arch: ArchConfig, height: int, width: int) -> None:
        super().__init__()
        self.arch = arch
        self.height = height
        self.width = width
        self.latents = nn.ParameterList(
            nn.Parameter(torch.zeros(1, 1, h, w)) for h, w in grid_sizes(height, width, arch.latent_levels)
        )
        self.arm = Arm(arch.arm_context, arch.arm_hidden)
        self.upsampling = Upsampling(arch.upsampling_kernel)
        self.synthesis = Synthesis(arch.latent_levels, arch.synthesis_hidden, arch.synthesis_residual)

    def quantized_latents(self, quantizer: str, ste_epsilon: float = 0.01, temperature: float = SOFTROUND_TEMPERATURE
                          ) -> list[torch.Tensor]:
        """Noise: additive uniform noise in [-1/2, 1/2); softround: soft_round(soft_round(y) + noise) at the
        temperature; ste: rounding with epsilon gradient; round: exact."""
        grids = []
        for latent in self.latents:
            latent = latent.clamp(LATENT_MIN, LATENT_MAX)
            if quantizer == "noise":
                grids.append(latent + torch.rand_like(latent) - 0.5)
            elif quantizer == "softround":
                noisy = soft_round(latent, temperature) + torch.rand_like(latent) - 0.5
                grids.append(soft_round(noisy, temperature))
            elif quantizer == "ste":
                grids.append(RoundWithEpsilonGradient.apply(latent, ste_epsilon))
            else:
                grids.append(torch.round(latent).detach())
        return grids

    def decode_planes(self, grids: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent grids -> luma (1, 1, H, W) and 4:2:0 chroma (1, 2, H/2, W/2), normalised to [0, 1]."""
        planes = self.synthesis(self.upsampling(grids))
        return to_420(planes, self.arch.chroma_downscale)

    def forward(self, quantizer: str, ste_epsilon: float = 0.01, temperature: float = SOFTROUND_TEMPERATURE
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction and the total rate of the latents in bits under the (float) ARM."""
        grids = self.quantized_latents(quantizer, ste_epsilon, temperature)
        mean, log2_scale = self.arm(grids)
        values = torch.cat([grid.flatten() for grid in grids])
        bits = laplace_bits(values, mean, log2_scale).sum()
        luma, chroma = self.decode_planes(grids)
        return luma, chroma, bits


def latent_positions_per_pixel(arch: ArchConfig, height: int, width: int) -> float:
    return sum(h * w for h, w in grid_sizes(height, width, arch.latent_levels)) / (height * width)


def macs_per_pixel(arch: ArchConfig, height: int = 1080, width: int = 1920) -> dict[str, float]:
    """Multiply-accumulates per decoded pixel, counted from the real modules (default: a 1080p frame)."""
    arm = Arm(arch.arm_context, arch.arm_hidden)
    upsampling = Upsampling(arch.upsampling_kernel)
    synthesis = Synthesis(arch.latent_levels, arch.synthesis_hidden, arch.synthesis_residual)
    counts = {
        "arm": arm.macs_per_position() * latent_positions_per_pixel(arch, height, width),
        "upsampling": upsampling.macs_per_pixel(arch.latent_levels),
        "synthesis": float(synthesis.macs_per_pixel()),
    }
    counts["total"] = sum(counts.values())
    return counts


def planes_to_frame(luma: torch.Tensor, chroma: torch.Tensor, bitdepth: int) -> Frame:
    """Normalised output planes -> integer samples at the coded bit depth (round, clip)."""
    peak = float((1 << bitdepth) - 1)

    def to_samples(plane: torch.Tensor) -> np.ndarray:
        samples = torch.nan_to_num(plane.detach().float().cpu(), nan=0.0) * peak
        return samples.round().clamp(0, peak).numpy().astype(np.uint16)

    return Frame(to_samples(luma[0, 0]), to_samples(chroma[0, 0]), to_samples(chroma[0, 1]), bitdepth)
