"""Choosing each module's parameter quantisation step by the RD cost, parameter bits included."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vcodec.bitstream.frame_header import FORMAT_VERSION
from vcodec.entropy.param_coder import (
    ParamGroup,
    dequantize,
    encode_parameters,
    parameter_groups,
    quantize,
    scale_index_for,
)
from vcodec.encoder.losses import mse_yuv
from vcodec.encoder.target import Target
from vcodec.format import PARAM_STEP_EXP_MAX
from vcodec.model.frame_model import FrameModel
from vcodec.model.parameters import flat_parameters, load_flat_parameters
from vcodec.shapes import parameter_shapes

FINEST_STEP_EXP = 12   # finest step tried, 2^-12: below it the parameters are as good as float
COARSEST_STEP_EXP = 2  # coarsest step tried, 2^-2


@dataclass(frozen=True)
class QuantizedParameters:
    groups: tuple[ParamGroup, ...]          # parameter_groups of the format written: what each entry is
    step_exps: tuple[int, ...]              # per group
    integers: tuple[np.ndarray, ...]
    scale_indices: tuple[int, ...]


def parameter_bits(integers: np.ndarray, scale_index: int) -> int:
    return 8 * len(encode_parameters([(integers, scale_index)]))


@torch.no_grad()
def _rd_cost(model: FrameModel, target: Target, lmbda: float, extra_bits: float) -> float:
    luma, chroma, bits = model(model.rounded_grids())
    return float(mse_yuv(luma, chroma, target.luma, target.chroma)) + lmbda * (float(bits) + extra_bits) / target.pixels


def quantize_parameters(model: FrameModel, target: Target, lmbda: float, patience: int) -> QuantizedParameters:
    """Greedy, group after group (parameter_groups of the format written): walk the steps 2^-k from fine to coarse
    and keep the lowest D + lambda R, parameter bits included.

    From the fine end, coarser steps first save bits at almost no distortion, then distortion wins: the
    walk stops once `patience` coarser steps in a row have not beaten the best. (From the coarse end the
    cost is not unimodal: a bicubic kernel is ruined by 2^-2 and 2^-3 alike.) The model is left holding
    the chosen dequantised values.
    """
    chosen_bits = 0.0
    step_exps, integers, scale_indices = [], [], []
    groups = parameter_groups(parameter_shapes(model.arch), FORMAT_VERSION)
    for group in groups:
        tensors = group.tensors(model)
        original = flat_parameters(tensors)
        best: tuple[float, int, np.ndarray, int, int] | None = None
        for step_exp in range(min(FINEST_STEP_EXP, PARAM_STEP_EXP_MAX), COARSEST_STEP_EXP - 1, -1):
            if best is not None and best[1] - step_exp > patience:
                break
            values = quantize(original, step_exp)
            if values is None:
                continue  # too fine for the coded integer range; coarser steps may fit
            scale_index = scale_index_for(values)
            bits = parameter_bits(values, scale_index)
            load_flat_parameters(tensors, dequantize(values, step_exp))
            cost = _rd_cost(model, target, lmbda, chosen_bits + bits)
            if best is None or cost < best[0]:
                best = (cost, step_exp, values, scale_index, bits)
        if best is None:
            raise RuntimeError(f"no quantisation step fits the parameters of {group.label}")
        _, step_exp, values, scale_index, bits = best
        load_flat_parameters(tensors, dequantize(values, step_exp))
        chosen_bits += bits
        step_exps.append(step_exp)
        integers.append(values)
        scale_indices.append(scale_index)
    return QuantizedParameters(groups, tuple(step_exps), tuple(integers), tuple(scale_indices))
