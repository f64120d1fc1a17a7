"""The decoder: frame bitstream -> YUV420 frame. Needs nothing but the bytes, and no training code.

Imports only the bitstream, entropy and model packages and the layers below them (tests/test_layering.py);
tests/test_codec.py imports it with the training code blocked. Frame format 6 decodes without torch (the
integer ARM and the fixed-point picture are compiled); formats 1-5 load it for their float picture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from vcodec.allocator import retain_freed_memory
from vcodec.bitstream.frame_header import FrameHeader, parse_header
from vcodec.entropy.fixed_point import IntegerArm
from vcodec.entropy.latent_workers import decode_grids
from vcodec.entropy.param_coder import ParamGroup, decode_parameters, dequantize, integer_arm, parameter_groups
from vcodec.entropy.stage_times import StageTimes
from vcodec.entropy.substreams import latent_bands
from vcodec.format import FIXED_POINT_PICTURE_VERSION, TABLE_MODEL_VERSION
from vcodec.model.fixed_point import FixedPointPicture
from vcodec.model.fixed_point import planes_to_frame as fixed_point_frame
from vcodec.shapes import OUTPUT_PLANES, arm_layer_shapes, context_offsets, grid_sizes, parameter_shapes
from vcodec.types import Frame

if TYPE_CHECKING:
    from vcodec.model.synthesis import Synthesis
    from vcodec.model.upsampling import Upsampling


class _Decoded(NamedTuple):
    header: FrameHeader
    groups: tuple[ParamGroup, ...]   # the parameter groups, in stored order
    integers: list[np.ndarray]       # their coded integers
    arm_integer: IntegerArm
    offsets: list[tuple[int, int]]   # the ARM's context offsets
    grids: list[np.ndarray]


def synthesize(grids: list[np.ndarray], upsampling: Upsampling, synthesis: Synthesis,
               chroma_downscale: str, bitdepth: int, times: StageTimes | None = None) -> Frame:
    """Integer latent grids -> frame, with the float upsampling and synthesis (CPU, float32): formats 1-5."""
    import torch  # formats 1-5 only: format 6 decodes without torch (its import alone takes 1-1.5 s)

    from vcodec.model.frame_model import planes_to_frame
    from vcodec.model.synthesis import to_420

    times = times or StageTimes()
    with torch.no_grad():
        tensors = [torch.from_numpy(g.astype(np.float32)).view(1, 1, *g.shape) for g in grids]
        upsampled = upsampling(tensors)
        times.lap("upsampling")
        planes = synthesis(upsampled)
        times.lap("synthesis")
        luma, chroma = to_420(planes, chroma_downscale)
    frame = planes_to_frame(luma, chroma, bitdepth)
    times.lap("output planes")
    return frame


def synthesize_fixed_point(grids: list[np.ndarray], picture: FixedPointPicture, chroma_downscale: str,
                           bitdepth: int, times: StageTimes | None = None) -> Frame:
    """Integer latent grids -> frame, in fixed point (format 6 on): the same samples on every machine."""
    times = times or StageTimes()
    upsampled = picture.upsample(grids)
    times.lap("upsampling")
    planes = picture.synthesize(upsampled, reuse_input=True)
    times.lap("synthesis")
    frame = fixed_point_frame(planes, chroma_downscale, bitdepth)
    times.lap("output planes")
    return frame


def decode_frame(data: bytes, times: StageTimes | None = None, workers: int | None = None) -> Frame:
    """Rebuild a frame from its bitstream; raises BitstreamError on any malformed input.

    times: if given, receives the seconds of each stage (scripts/bench_codec.py reports the split).
    workers: processes decoding latent substreams at once (None: as many as pay; the result is the same)."""
    times = times or StageTimes()
    retain_freed_memory()  # the synthesis' temporaries, and the next frame's, reuse freed pages
    times.restart()
    decoded = _decode_latents(data, times, workers)
    header, arch = decoded.header, decoded.header.arch
    if header.version >= FIXED_POINT_PICTURE_VERSION:
        picture = _fixed_point_picture(decoded)
        return synthesize_fixed_point(decoded.grids, picture, arch.chroma_downscale, header.bitdepth, times)
    # Formats 1-5: the float modules, loaded with the dequantised parameters (torch loads here).
    from vcodec.model.modules import build_modules
    from vcodec.model.parameters import load_flat_parameters

    modules = build_modules(arch, header.preactivated_residual)
    for group, values, step_exp in zip(decoded.groups[2:], decoded.integers[2:], header.step_exps[2:]):
        load_flat_parameters(group.tensors(modules), dequantize(values, step_exp))
    return synthesize(decoded.grids, modules.upsampling, modules.synthesis, arch.chroma_downscale, header.bitdepth, times)


def _fixed_point_picture(decoded: _Decoded) -> FixedPointPicture:
    """Format 6 on: the upsampling and synthesis from their coded integers (one tensor per group)."""
    header, arch = decoded.header, decoded.header.arch
    coded = {f"{group.module}.{group.names[0]}": (values, step_exp)
             for group, values, step_exp in zip(decoded.groups[2:], decoded.integers[2:], header.step_exps[2:])}
    return FixedPointPicture.from_coded(coded, (arch.latent_levels, *arch.synthesis_hidden, OUTPUT_PLANES),
                                        arch.synthesis_residual)


def decode_latent_grids(data: bytes) -> tuple[list[np.ndarray], IntegerArm, list[tuple[int, int]]]:
    """The frame's latent grids, its integer ARM and the ARM's context offsets (tools that re-code them)."""
    decoded = _decode_latents(data, StageTimes(), None)
    return decoded.grids, decoded.arm_integer, decoded.offsets


def _decode_latents(data: bytes, times: StageTimes, workers: int | None) -> _Decoded:
    header, offset = parse_header(data)
    arch = header.arch
    param_end = offset + header.param_stream_bytes
    groups = parameter_groups(parameter_shapes(arch), header.version)  # the ARM's weights and biases first
    integers = decode_parameters(data[offset:param_end], [group.count for group in groups], list(header.scale_indices))
    arm_integer = integer_arm(arm_layer_shapes(arch.arm_context, arch.arm_hidden), integers[0], integers[1],
                              *header.step_exps[:2])
    times.lap("header and parameters")
    sizes = grid_sizes(header.height, header.width, arch.latent_levels)
    bands = latent_bands(sizes, list(header.coded_grids), header.latent_substreams)
    times.lap("latent set-up")
    offsets = context_offsets(arch.arm_context, arch.arm_context_layout)
    grids = decode_grids(header.split_latent_stream(data[param_end:]), arm_integer, sizes, bands, offsets, workers, times,
                         table_model=header.version >= TABLE_MODEL_VERSION)
    return _Decoded(header, groups, integers, arm_integer, offsets, grids)


__all__ = ["FrameHeader", "StageTimes", "decode_frame", "decode_latent_grids", "synthesize", "synthesize_fixed_point"]
