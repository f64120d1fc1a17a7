"""What `vcodec info` shows about one frame bitstream, read from its header alone (no torch)."""

from __future__ import annotations

from dataclasses import dataclass

from vcodec.bitstream.frame_header import parse_header
from vcodec.model.complexity import macs_per_pixel


@dataclass(frozen=True)
class FrameInfo:
    """What `vcodec info` shows about one frame bitstream (read from the header alone)."""

    width: int
    height: int
    bitdepth: int
    arch_name: str
    arm_context: int
    arm_hidden: tuple[int, ...]
    synthesis_hidden: tuple[int, ...]
    synthesis_residual: int
    chroma_downscale: str
    mac_per_pixel: float
    coded_grids: int
    header_bytes: int
    parameter_bytes: int
    latent_bytes: int


def read_frame_info(data: bytes) -> FrameInfo:
    header, offset = parse_header(data)
    arch = header.arch
    return FrameInfo(
        width=header.width, height=header.height, bitdepth=header.bitdepth, arch_name=arch.name,
        arm_context=arch.arm_context, arm_hidden=arch.arm_hidden, synthesis_hidden=arch.synthesis_hidden,
        synthesis_residual=arch.synthesis_residual, chroma_downscale=arch.chroma_downscale,
        mac_per_pixel=macs_per_pixel(arch, header.height, header.width)["total"],
        coded_grids=sum(header.coded_grids), header_bytes=offset,
        parameter_bytes=header.param_stream_bytes, latent_bytes=header.latent_stream_bytes,
    )
