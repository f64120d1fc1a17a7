"""Quantised network parameters: per-module step 2^-k, integers range-coded under a zero-mean Laplace."""

from __future__ import annotations

import math

import constriction
import numpy as np
import torch
from torch import nn

from vcodec.entropy.constants import PARAM_INT_LIMIT, PARAM_SCALE_INDEX_MAX
from vcodec.entropy.fixed_point import IntegerArm
from vcodec.entropy.tables import exp2_table
from vcodec.model.arm import Arm
from vcodec.types import BitstreamError

MODULE_NAMES: tuple[str, ...] = ("arm", "upsampling", "synthesis")


def param_family() -> constriction.stream.model.QuantizedLaplace:
    return constriction.stream.model.QuantizedLaplace(-PARAM_INT_LIMIT, PARAM_INT_LIMIT)


def flat_parameters(module: nn.Module) -> np.ndarray:
    """All parameters in registration order: the order in which they are stored in the bitstream."""
    return torch.cat([p.detach().reshape(-1).double().cpu() for p in module.parameters()]).numpy()


def load_flat_parameters(module: nn.Module, values: np.ndarray) -> None:
    position = 0
    with torch.no_grad():
        for parameter in module.parameters():
            count = parameter.numel()
            chunk = torch.from_numpy(values[position : position + count].astype(np.float32))
            parameter.copy_(chunk.view_as(parameter))
            position += count


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


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


def encode_parameters(modules: list[tuple[np.ndarray, int]]) -> bytes:
    """modules: (integers, scale_index) in MODULE_NAMES order -> one range-coded stream."""
    encoder = constriction.stream.queue.RangeEncoder()
    family = param_family()
    for integers, scale_index in modules:
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


def integer_arm(arm: Arm, integers: np.ndarray, step_exp: int) -> IntegerArm:
    """Split the ARM's flat integers into layers, following the float module's shapes."""
    weights, biases = [], []
    position = 0
    for layer in [*arm.layers, arm.output]:
        out_features, in_features = layer.weight.shape
        w = integers[position : position + out_features * in_features].reshape(out_features, in_features)
        position += out_features * in_features
        b = integers[position : position + out_features]
        position += out_features
        weights.append(w.astype(np.float64))
        biases.append(b.astype(np.float64))
    return IntegerArm(tuple(weights), tuple(biases), step_exp)
