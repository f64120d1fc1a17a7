"""The shapes an architecture implies, as the format defines them: the latent grids, the ARM's causal
neighbourhood and the ARM's layers (their widths, and which of them add their input).

Torch-free and below `model` and `entropy`: the float model that trains, the integer ARM and latent coder
that code, the MAC count and the decoder all take these shapes from here, so they cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from vcodec.format import MAX_ARM_CONTEXT, MODULES, PARAM_KINDS, PER_TENSOR_GROUPS_VERSION


def grid_sizes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """Grid l is ceil(H / 2^l) x ceil(W / 2^l): every even frame size works without padding the frame."""
    return [(math.ceil(height / 2**level), math.ceil(width / 2**level)) for level in range(levels)]


CONTEXT_WINDOW_RADIUS = 4  # "priority" contexts are taken from the causal half of a 9x9 window


def _raster_offsets(context: int) -> list[tuple[int, int]]:
    """Format versions 1-2: 24 = causal half of a 7x7 window, 12 = of a 5x5 one, rows above then left."""
    radius = {24: 3, 12: 2}.get(context)
    if radius is None:
        raise ValueError(f"raster ARM context must be 12 or 24, got {context}")
    offsets = [(dy, dx) for dy in range(-radius, 0) for dx in range(-radius, radius + 1)]
    return offsets + [(0, dx) for dx in range(-radius, 0)]


def priority_order() -> list[tuple[int, int]]:
    """Every causal position of the 9x9 window, nearest first (distance, then the nearer row, then left
    to right): a context of N neighbours is the first N, so small ARMs see the most telling samples."""
    r = CONTEXT_WINDOW_RADIUS
    window = [(dy, dx) for dy in range(-r, 0) for dx in range(-r, r + 1)] + [(0, dx) for dx in range(-r, 0)]
    return sorted(window, key=lambda o: (o[0] * o[0] + o[1] * o[1], -o[0], o[1]))


def context_offsets(context: int, layout: str) -> list[tuple[int, int]]:
    """(dy, dx) of the causal neighbours, in the order the ARM's first layer weights follow (bitstream
    semantics): "raster" (format versions 1-2) or "priority" (the first `context` of priority_order())."""
    if layout == "raster":
        return _raster_offsets(context)
    if layout == "priority":
        if not 1 <= context <= MAX_ARM_CONTEXT:
            raise ValueError(f"priority ARM context must be 1..{MAX_ARM_CONTEXT}, got {context}")
        return priority_order()[:context]
    raise ValueError(f"unknown ARM context layout {layout!r}")


def offsets_radius(offsets: list[tuple[int, int]]) -> int:
    """Padding the offsets need around a grid (and the wavefront's slope)."""
    return max(max(abs(dy), abs(dx)) for dy, dx in offsets)


ARM_OUTPUTS = 2  # the ARM's output layer gives the Laplace mean and log2 scale


def arm_layer_shapes(context: int, hidden: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """(inputs, outputs) of each ARM layer: the hidden layers, then the output layer. The parameter
    stream stores the layers in this order, so the decoder splits the ARM's integers by these shapes."""
    widths = [context, *hidden, ARM_OUTPUTS]
    return tuple(zip(widths[:-1], widths[1:]))


def arm_residual_layers(shapes: Sequence[tuple[int, int]]) -> tuple[bool, ...]:
    """For each ARM layer (in arm_layer_shapes' order): whether it adds its input to its output.

    A hidden layer does when it keeps the width, except the first, which reads the raw context even when
    the context has the hidden width; the output layer never does. Bitstream semantics: the float ARM that
    trains and the integer ARM that codes both follow this one rule, so they run the same network.
    """
    last = len(shapes) - 1
    return tuple(0 < index < last and inputs == outputs for index, (inputs, outputs) in enumerate(shapes))


OUTPUT_PLANES = 3  # the synthesis writes Y, U and V at luma resolution
RESIDUAL_KERNEL = 3    # the synthesis' residual blocks are 3x3 convolutions


class ArchShape(Protocol):
    """The fields of vcodec.config.ArchConfig that fix the networks' parameters."""

    arm_context: int
    arm_hidden: tuple[int, ...]
    upsampling_kernel: int
    latent_levels: int
    synthesis_hidden: tuple[int, ...]
    synthesis_residual: int


Shape = tuple[int, ...]


def parameter_shapes(arch: ArchShape) -> dict[str, tuple[tuple[str, Shape], ...]]:
    """Every module's parameters, (name, shape) in the order torch registers them (the order the parameter
    stream stores them in), keyed as vcodec.format.MODULES: what the float modules of vcodec.model hold
    (tests/test_codec_parts.py checks every architecture), known without building them (the decoder of
    format 6 on needs no torch)."""
    arm = []
    *hidden, (last, outputs) = arm_layer_shapes(arch.arm_context, arch.arm_hidden)
    for index, (inputs, width) in enumerate(hidden):
        arm += [(f"layers.{index}.weight", (width, inputs)), (f"layers.{index}.bias", (width,))]
    arm += [("output.weight", (outputs, last)), ("output.bias", (outputs,))]
    kernel = arch.upsampling_kernel
    synthesis = []
    widths = [arch.latent_levels, *arch.synthesis_hidden, OUTPUT_PLANES]
    for index, (inputs, width) in enumerate(zip(widths[:-1], widths[1:])):
        synthesis += [(f"pointwise.{index}.weight", (width, inputs)), (f"pointwise.{index}.bias", (width,))]
    for index in range(arch.synthesis_residual):
        synthesis += [(f"residual.{index}.weight", (OUTPUT_PLANES, OUTPUT_PLANES, RESIDUAL_KERNEL, RESIDUAL_KERNEL)),
                      (f"residual.{index}.bias", (OUTPUT_PLANES,))]
    shapes = {"arm": tuple(arm), "upsampling": (("kernel", (1, 1, kernel, kernel)),), "synthesis": tuple(synthesis)}
    return {module: shapes[module] for module in MODULES}


def parameter_group_count(synthesis_layers: int, synthesis_residual: int, version: int) -> int:
    """How many parameter groups (a step and a scale each in the frame header) a frame of this format
    version and architecture has: `vcodec.entropy.param_coder.parameter_groups` without building the
    modules (the header parser is torch-free). Before PER_TENSOR_GROUPS_VERSION: each module's weights
    and biases. From it: the ARM's 2 kinds, the upsampling's kernel, a weight and a bias for each 1x1
    synthesis layer (hidden ones and the output layer) and each residual convolution."""
    if version < PER_TENSOR_GROUPS_VERSION:
        return len(MODULES) * len(PARAM_KINDS)
    return 2 + 1 + 2 * (synthesis_layers + 1) + 2 * synthesis_residual
