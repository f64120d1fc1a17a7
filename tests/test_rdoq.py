"""RDOQ of the network parameters: it never raises the RD cost it measures, and its result is what the
bitstream carries."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from vcodec.config import load_config
from vcodec.decoder import decode_frame
from vcodec.encoder.encode import encode_frame_and_model, fit, write_bitstream
from vcodec.encoder.losses import mse_yuv
from vcodec.encoder.quantize import quantize_parameters
from vcodec.encoder.rdoq import rdoq_parameters
from vcodec.io.formats import frame_to_bytes
from vcodec.entropy.param_coder import dequantize, param_scale
from vcodec.model.parameters import flat_parameters
from vcodec.model.arm import laplace_bits
from vcodec.samples import sample_frames


def _measured_cost(model, target, lmbda: float, integers, scale_indices) -> float:
    """J from scratch: one full forward pass of the model as it is, parameter bits summed per group."""
    luma, chroma, latent_bits = model(model.rounded_grids())
    parameter_bits = 0.0
    for values, scale_index in zip(integers, scale_indices):
        tensor = torch.from_numpy(values.astype(np.float64))
        log2_scale = torch.full_like(tensor, math.log2(param_scale(scale_index)))
        parameter_bits += float(laplace_bits(tensor, torch.zeros_like(tensor), log2_scale).sum())
    distortion = float(mse_yuv(luma, chroma, target.luma, target.chroma))
    return distortion + lmbda * (float(latent_bits) + parameter_bits) / target.pixels


@pytest.fixture(scope="module")
def trained():
    frame = sample_frames(48, 32, 1, 8, "chelsea")[0]
    cfg = load_config("tiny", "fast", iterations=80, quantization_patience=1)
    model, target, _ = fit(frame, 0.001, cfg, None)
    return frame, model, target


@pytest.mark.parametrize(("lmbda", "screen"), [(0.0002, True), (0.001, False), (0.005, True)])
def test_rdoq_never_raises_the_cost_it_measures(trained, lmbda: float, screen: bool) -> None:
    frame, trained_model, target = trained
    model = copy.deepcopy(trained_model)
    params = quantize_parameters(model, target, lmbda, 1)
    with torch.no_grad():
        before = _measured_cost(model, target, lmbda, params.integers, params.scale_indices)
        result = rdoq_parameters(model, target, lmbda, params, passes=2, screen=screen)
        after = _measured_cost(model, target, lmbda, result.params.integers, params.scale_indices)
    assert result.cost_before == pytest.approx(before, rel=1e-6)
    assert result.cost_after == pytest.approx(after, rel=1e-6)  # its incremental bookkeeping is exact
    assert after <= before
    assert result.moved > 0
    if not screen:
        assert result.trials >= sum(len(v) for v in params.integers)  # every parameter tried at least once
    # The model holds exactly the dequantised result, so what is written is what was scored.
    for group, values, step_exp in zip(result.params.groups, result.params.integers, result.params.step_exps):
        np.testing.assert_array_equal(flat_parameters(group.tensors(model)).astype(np.float32),
                                      dequantize(values, step_exp).astype(np.float32))
    data, _ = write_bitstream(frame, model, result.params)
    assert decode_frame(data).width == frame.width


def test_screening_skips_trials_and_still_gains(trained) -> None:
    _, trained_model, target = trained
    lmbda = 0.001
    results = {}
    for screen in (False, True):
        model = copy.deepcopy(trained_model)
        params = quantize_parameters(model, target, lmbda, 1)
        results[screen] = rdoq_parameters(model, target, lmbda, params, passes=1, screen=screen)
    full, screened = results[False], results[True]
    assert screened.cost_before == full.cost_before
    assert screened.trials < full.trials
    assert screened.cost_after < screened.cost_before and full.cost_after < full.cost_before


def test_encoder_with_rdoq_writes_what_it_decodes() -> None:
    frame = sample_frames(48, 32, 1, 8, "coffee")[0]
    lmbda = 0.002
    plain, _ = encode_frame_and_model(frame, lmbda, load_config("tiny", "fast", iterations=80))
    rdoq, _ = encode_frame_and_model(frame, lmbda, load_config("tiny", "fast", iterations=80, rdoq_passes=1))
    # Same seed, same training: only the parameters' integers differ, and the encoder checked its decoder
    # against the RDOQ'd model.
    assert rdoq.data != plain.data
    assert rdoq.step_exps == plain.step_exps
    assert frame_to_bytes(decode_frame(rdoq.data)) == frame_to_bytes(rdoq.reconstruction)
