"""Quantised network parameters, coded in groups that each have one step 2^-k and one zero-mean Laplace
scale; the integers are range-coded group after group in `parameter_groups` order.

Format versions 1-4 group each module's weights and its biases. From version 5 the
upsampling and synthesis tensors are a group each: a synthesis' 1x1 layers and its 3x3 residual
convolutions need different steps, and their values different scales (measured on 12 trained frames:
2.6-7.6 % fewer parameter bits, -1.08 % BD-rate; docs/results/recode-2026-11-25.md). The ARM keeps one group per kind, since the integer ARM
(`vcodec.entropy.fixed_point`) has one weight step and one bias step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import constriction
import numpy as np

from vcodec.entropy.constants import PARAM_INT_LIMIT
from vcodec.entropy.fixed_point import IntegerArm
from vcodec.entropy.tables import exp2_table
from vcodec.format import MODULES, PARAM_KINDS, PARAM_SCALE_INDEX_MAX, PER_TENSOR_GROUPS_VERSION
from vcodec.types import BitstreamError



@dataclass(frozen=True)
class ParamGroup:
    """Parameters coded with one step and one scale: named parameters of one module, in stored order."""

    module: str              # one of vcodec.format.MODULES
    names: tuple[str, ...]   # as module.named_parameters() names them
    count: int               # how many values the group's tensors hold

    @property
    def label(self) -> str:
        return f"{self.module}.{self.names[0]}" if len(self.names) == 1 else f"{self.module} {len(self.names)} tensors"

    def tensors(self, modules: Any) -> list[Any]:
        """The group's tensors (torch parameters) in `modules` (a FrameModel or vcodec.model's DecoderModules)."""
        module = getattr(modules, self.module)
        return [module.get_parameter(name) for name in self.names]


def parameter_groups(shapes: Mapping[str, Sequence[tuple[str, tuple[int, ...]]]], version: int) -> tuple[ParamGroup, ...]:
    """The parameter groups of a frame of this format version, in stored order (module-major).

    shapes: vcodec.shapes.parameter_shapes of the frame's architecture. Before PER_TENSOR_GROUPS_VERSION:
    each module's weights, then its biases (an empty group where a module has no biases). From it: the
    ARM's weights and biases, then every other tensor alone in registration order
    (vcodec.shapes.parameter_group_count gives the count alone).
    """
    groups = []
    for module_name in MODULES:
        named = list(shapes[module_name])
        if version < PER_TENSOR_GROUPS_VERSION or module_name == "arm":
            for kind in PARAM_KINDS:
                chosen = [(name, shape) for name, shape in named if _kind(name) == kind]
                groups.append(ParamGroup(module_name, tuple(name for name, _ in chosen), _values(chosen)))
        else:
            groups.extend(ParamGroup(module_name, (name,), _values([(name, shape)])) for name, shape in named)
    return tuple(groups)


def _values(named_shapes: Sequence[tuple[str, tuple[int, ...]]]) -> int:
    return sum(math.prod(shape) for _, shape in named_shapes)


def param_family() -> constriction.stream.model.QuantizedLaplace:
    return constriction.stream.model.QuantizedLaplace(-PARAM_INT_LIMIT, PARAM_INT_LIMIT)


def _kind(name: str) -> str:
    return "bias" if name.endswith("bias") else "weight"


def quantize(values: np.ndarray, step_exp: int) -> np.ndarray | None:
    """Integers round(v * 2^k), or None when a value would not fit the coded range."""
    integers = np.round(np.ldexp(values, step_exp))
    if np.abs(integers).max(initial=0) > PARAM_INT_LIMIT:
        return None
    return integers.astype(np.int64)


def dequantize(integers: np.ndarray, step_exp: int) -> np.ndarray:
    return np.ldexp(integers.astype(np.float64), -step_exp)


def scale_index_for(integers: np.ndarray) -> int:
    """Maximum-likelihood Laplace scale (mean absolute value), as an index b = 2^(index/16)."""
    mean_abs = max(float(np.abs(integers).mean()) if len(integers) else 1.0, 1.0)
    return min(PARAM_SCALE_INDEX_MAX, max(0, round(16 * math.log2(mean_abs))))


def param_scale(scale_index: int) -> float:
    return float(exp2_table(np.array([scale_index]), 4, 0)[0])


def encode_parameters(groups: list[tuple[np.ndarray, int]]) -> bytes:
    """groups: (integers, scale_index) in parameter_groups order -> one range-coded stream."""
    encoder = constriction.stream.queue.RangeEncoder()
    family = param_family()
    for integers, scale_index in groups:
        if len(integers):
            scales = np.full(len(integers), param_scale(scale_index))
            encoder.encode(integers.astype(np.int32), family, np.zeros(len(integers)), scales)
    return encoder.get_compressed().tobytes()


def decode_parameters(stream: bytes, counts: list[int], scale_indices: list[int]) -> list[np.ndarray]:
    if len(stream) % 4:
        raise BitstreamError("parameter stream length is not a multiple of 4 bytes")
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(stream, dtype=np.uint32).copy())
    family = param_family()
    modules = []
    try:
        for count, scale_index in zip(counts, scale_indices):
            scales = np.full(count, param_scale(scale_index))
            modules.append(np.asarray(decoder.decode(family, np.zeros(count), scales), dtype=np.int64))
    except (ValueError, RuntimeError, AssertionError) as error:
        raise BitstreamError(f"parameter stream is corrupt ({error})") from None
    return modules


def integer_arm(layer_shapes: Sequence[tuple[int, int]], weights: np.ndarray, biases: np.ndarray,
                weight_step_exp: int, bias_step_exp: int) -> IntegerArm:
    """Split the ARM's weight and bias integers into layers of the given (inputs, outputs) shapes
    (vcodec.shapes.arm_layer_shapes, the order the parameter stream stores them in)."""
    layer_weights, layer_biases = [], []
    weight_position = bias_position = 0
    for in_features, out_features in layer_shapes:
        count = out_features * in_features
        layer_weights.append(weights[weight_position : weight_position + count].reshape(out_features, in_features)
                             .astype(np.float64))
        layer_biases.append(biases[bias_position : bias_position + out_features].astype(np.float64))
        weight_position += count
        bias_position += out_features
    return IntegerArm(tuple(layer_weights), tuple(layer_biases), weight_step_exp, bias_step_exp)
