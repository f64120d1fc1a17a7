"""The whole per-frame model that the encoder trains: latent grids + the decoder's modules (ARM,
upsampling, synthesis, built by vcodec.model.modules as the decoder builds them)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vcodec.config import ArchConfig
from vcodec.format import LATENT_MAX, LATENT_MIN
from vcodec.model.modules import build_modules
from vcodec.model.synthesis import to_420
from vcodec.shapes import grid_sizes
from vcodec.types import Frame


# Sizes of the pieces that the memory-saving path recomputes in the backward pass: big enough that the
# per-piece overhead (one checkpoint each) is small, small enough that a piece's activations stay cheap.
ARM_BAND_POSITIONS = 1 << 16
SYNTHESIS_CHUNK_PIXELS = 1 << 16


class FrameModel(nn.Module):
    def __init__(self, arch: ArchConfig, height: int, width: int, latent_gain: float = 1.0,
                 memory_saving_pixels: int | None = None) -> None:
        """memory_saving_pixels: frames of more pixels than this train on the memory-saving path (the ARM
        and the synthesis' 1x1 layers recomputed piecewise in the backward pass: PresetConfig's field of the
        same name); None never does."""
        super().__init__()
        self.memory_saving = memory_saving_pixels is not None and height * width > memory_saving_pixels
        self.latent_gain = latent_gain
        self.arch = arch
        self.height = height
        self.width = width
        self.latents = nn.ParameterList(
            nn.Parameter(torch.zeros(1, 1, h, w)) for h, w in grid_sizes(height, width, arch.latent_levels)
        )
        self.arm, self.upsampling, self.synthesis = build_modules(arch)

    def scaled_latents(self) -> list[torch.Tensor]:
        """The latents as coded, before rounding: gain * stored value, clamped to the coded range.

        The gain (an encoder choice, never stored) makes the latents move `gain` times faster than the
        network under one learning rate (Cool-chic's encoder gain)."""
        return [(latent * self.latent_gain).clamp(LATENT_MIN, LATENT_MAX) for latent in self.latents]

    def rounded_grids(self) -> list[torch.Tensor]:
        """The integer latents the bitstream codes (as float tensors, no gradient)."""
        with torch.no_grad():
            return [torch.round(latent) for latent in self.scaled_latents()]

    def decode_planes(self, grids: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent grids -> luma (1, 1, H, W) and 4:2:0 chroma (1, 2, H/2, W/2), normalised to [0, 1]."""
        chunk = SYNTHESIS_CHUNK_PIXELS if self.memory_saving else 0
        planes = self.synthesis(self.upsampling(grids), recompute_chunk=chunk)
        return to_420(planes, self.arch.chroma_downscale)

    def latent_bits(self, grids: list[torch.Tensor]) -> torch.Tensor:
        """The grids' total rate in bits under the float ARM."""
        return self.arm.bits(grids, ARM_BAND_POSITIONS if self.memory_saving else 0)

    def forward(self, grids: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction from (quantised) latent grids, and their total rate in bits under the float ARM."""
        bits = self.latent_bits(grids)
        luma, chroma = self.decode_planes(grids)
        return luma, chroma, bits


def planes_to_frame(luma: torch.Tensor, chroma: torch.Tensor, bitdepth: int) -> Frame:
    """Normalised output planes -> integer samples at the coded bit depth (round, clip)."""
    peak = float((1 << bitdepth) - 1)

    def to_samples(plane: torch.Tensor) -> np.ndarray:
        samples = torch.nan_to_num(plane.detach().float().cpu(), nan=0.0) * peak
        return samples.round().clamp(0, peak).numpy().astype(np.uint16)

    return Frame(to_samples(luma[0, 0]), to_samples(chroma[0, 0]), to_samples(chroma[0, 1]), bitdepth)
