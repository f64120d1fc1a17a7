"""The decoder: frame bitstream -> YUV420 frame. Needs nothing but the bytes, and no training code.

Imports only the bitstream, entropy and model packages and the layers below them (tests/test_layering.py);
tests/test_codec.py imports it with the training code blocked.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from vcodec.allocator import retain_freed_memory
from vcodec.bitstream.frame_header import FrameHeader, parse_header
from vcodec.entropy.fixed_point import IntegerArm
from vcodec.entropy.latent_workers import decode_grids
from vcodec.entropy.param_coder import (
    decode_parameters,
    dequantize,
    integer_arm,
    load_flat_parameters,
    parameter_count,
    parameter_groups,
)
from vcodec.entropy.stage_times import StageTimes
from vcodec.entropy.substreams import latent_bands
from vcodec.format import FIXED_POINT_PICTURE_VERSION
from vcodec.model.fixed_point import FixedPointPicture
from vcodec.model.fixed_point import planes_to_frame as fixed_point_frame
from vcodec.model.frame_model import planes_to_frame
from vcodec.model.modules import DecoderModules, build_modules
from vcodec.model.synthesis import OUTPUT_PLANES, Synthesis, to_420
from vcodec.model.upsampling import Upsampling
from vcodec.shapes import grid_sizes
from vcodec.types import Frame


class _Decoded(NamedTuple):
    header: FrameHeader
    modules: DecoderModules                    # the ARM, and the float upsampling and synthesis (formats 1-5)
    arm_integer: IntegerArm
    coded: dict[str, tuple[np.ndarray, int]]   # (integers, step exponent) per upsampling / synthesis tensor
    grids: list[np.ndarray]


@torch.no_grad()
def synthesize(grids: list[np.ndarray], upsampling: Upsampling, synthesis: Synthesis,
               chroma_downscale: str, bitdepth: int, times: StageTimes | None = None) -> Frame:
    """Integer latent grids -> frame, with the float upsampling and synthesis (CPU, float32): formats 1-5."""
    times = times or StageTimes()
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
    planes = picture.synthesize(upsampled)
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
    header, modules, _, coded, grids = _decode_latents(data, times, workers)
    if header.version >= FIXED_POINT_PICTURE_VERSION:
        arch = header.arch
        picture = FixedPointPicture.from_coded(coded, (arch.latent_levels, *arch.synthesis_hidden, OUTPUT_PLANES),
                                               arch.synthesis_residual)
        return synthesize_fixed_point(grids, picture, header.arch.chroma_downscale, header.bitdepth, times)
    return synthesize(grids, modules.upsampling, modules.synthesis, header.arch.chroma_downscale, header.bitdepth, times)


def decode_latent_grids(data: bytes) -> tuple[list[np.ndarray], IntegerArm, list[tuple[int, int]]]:
    """The frame's latent grids, its integer ARM and the ARM's context offsets (tools that re-code them)."""
    decoded = _decode_latents(data, StageTimes(), None)
    return decoded.grids, decoded.arm_integer, decoded.modules.arm.offsets


def _decode_latents(data: bytes, times: StageTimes, workers: int | None) -> _Decoded:
    header, offset = parse_header(data)
    arch = header.arch
    modules = build_modules(arch, header.preactivated_residual)
    param_end = offset + header.param_stream_bytes
    groups = parameter_groups(modules, header.version)  # the ARM's weights and biases first
    counts = [parameter_count(group.tensors(modules)) for group in groups]
    integers = decode_parameters(data[offset:param_end], counts, list(header.scale_indices))
    coded = {}
    for group, values, step_exp in zip(groups[2:], integers[2:], header.step_exps[2:]):
        load_flat_parameters(group.tensors(modules), dequantize(values, step_exp))
        if len(group.names) == 1:  # format 5 on: every upsampling and synthesis tensor is a group
            coded[f"{group.module}.{group.names[0]}"] = (values, step_exp)
    arm_integer = integer_arm(modules.arm.layer_shapes, integers[0], integers[1], *header.step_exps[:2])
    times.lap("header and parameters")
    sizes = grid_sizes(header.height, header.width, arch.latent_levels)
    bands = latent_bands(sizes, list(header.coded_grids), header.latent_substreams)
    times.lap("latent set-up")
    # The integer ARM's products are small (one wavefront of positions by a few dozen weights): BLAS
    # threads only wait on each other there (416x240: 0.61 -> 0.26 s on a busy 2-core machine; 1080p
    # unchanged).
    with threadpool_limits(limits=1, user_api="blas"):
        grids = decode_grids(header.split_latent_stream(data[param_end:]), arm_integer, sizes, bands,
                             modules.arm.offsets, workers, times)
    return _Decoded(header, modules, arm_integer, coded, grids)


__all__ = ["FrameHeader", "StageTimes", "decode_frame", "decode_latent_grids", "synthesize", "synthesize_fixed_point"]
