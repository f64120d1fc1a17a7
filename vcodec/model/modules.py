"""The three networks an architecture makes the decoder run, built from its ArchConfig in one place.

The encoder's FrameModel and the decoder both build them here, so that what trains and what decodes can
only differ where the bitstream says so (the format version's residual blocks), and a new architecture
field is wired in once.
"""

from __future__ import annotations

from typing import NamedTuple

from vcodec.config import ArchConfig
from vcodec.model.arm import Arm
from vcodec.model.synthesis import Synthesis
from vcodec.model.upsampling import Upsampling


class DecoderModules(NamedTuple):
    """Named and ordered as vcodec.format.MODULES, the order the parameter stream stores them in."""

    arm: Arm
    upsampling: Upsampling
    synthesis: Synthesis


def build_modules(arch: ArchConfig, preactivated_residual: bool = True) -> DecoderModules:
    """Freshly initialised modules of `arch`, always built in MODULES order: the order decides which
    random draws initialise each, so a seeded encode stays reproducible.

    preactivated_residual: False only to decode format version 1 (FrameHeader.preactivated_residual).
    """
    arm = Arm(arch.arm_context, arch.arm_hidden, arch.arm_context_layout)
    upsampling = Upsampling(arch.upsampling_kernel)
    synthesis = Synthesis(arch.latent_levels, arch.synthesis_hidden, arch.synthesis_residual,
                          preactivated=preactivated_residual)
    return DecoderModules(arm, upsampling, synthesis)
