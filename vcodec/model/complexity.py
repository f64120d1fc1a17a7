"""Decoder complexity in multiply-accumulates per decoded pixel, from the architecture alone.

Torch-free, so that `vcodec info` reports it without loading torch. tests/test_codec_parts.py checks
these counts against the shapes of the real modules.
"""

from __future__ import annotations

from vcodec.config import ArchConfig
from vcodec.shapes import OUTPUT_PLANES, RESIDUAL_KERNEL, arm_layer_shapes, grid_sizes


def latent_positions_per_pixel(arch: ArchConfig, height: int, width: int) -> float:
    return sum(h * w for h, w in grid_sizes(height, width, arch.latent_levels)) / (height * width)


def arm_macs_per_position(arch: ArchConfig) -> int:
    """Context -> hidden layers -> (mean, log2 scale)."""
    return sum(a * b for a, b in arm_layer_shapes(arch.arm_context, arch.arm_hidden))


def upsampling_macs_per_pixel(arch: ArchConfig) -> float:
    """Each transposed-convolution output sample costs kernel^2 / 4 MACs; level l carries L-1-l channels."""
    per_sample = arch.upsampling_kernel**2 / 4
    levels = arch.latent_levels
    return sum(per_sample * (levels - 1 - level) / 4**level for level in range(levels - 1))


def synthesis_macs_per_pixel(arch: ArchConfig) -> int:
    widths = [arch.latent_levels, *arch.synthesis_hidden, OUTPUT_PLANES]
    pointwise = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    return pointwise + arch.synthesis_residual * OUTPUT_PLANES * OUTPUT_PLANES * RESIDUAL_KERNEL**2


def macs_per_pixel(arch: ArchConfig, height: int = 1080, width: int = 1920) -> dict[str, float]:
    """Multiply-accumulates per decoded pixel by module, and their total (default: a 1080p frame)."""
    counts = {
        "arm": arm_macs_per_position(arch) * latent_positions_per_pixel(arch, height, width),
        "upsampling": upsampling_macs_per_pixel(arch),
        "synthesis": float(synthesis_macs_per_pixel(arch)),
    }
    counts["total"] = sum(counts.values())
    return counts
