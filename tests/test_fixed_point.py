"""The fixed-point upsampling and synthesis (frame format 6): the same arithmetic as the float modules'
layers, written out, and exact at the extremes the format allows.

The references here are torch's own float64 transposed and direct convolutions and Python integers: where
every value is an integer below 2^53, they must agree with vcodec.model.fixed_point to the last bit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vcodec.config import load_config
from vcodec.entropy.constants import PARAM_INT_LIMIT
from vcodec.format import PARAM_STEP_EXP_MAX, PICTURE_ACT_LIMIT, PICTURE_FRAC_BITS
from vcodec.model.fixed_point import FixedPointLayer, FixedPointPicture
from vcodec.model.modules import build_modules
from vcodec.model.upsampling import BORDER, CROP
from vcodec.shapes import grid_sizes

HALF = torch.tensor([0.5], dtype=torch.float64)


def _integers(rng: np.random.Generator, limit: int, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.from_numpy(rng.integers(-limit, limit + 1, shape).astype(np.float64))


@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (2, 3), (5, 7), (33, 17), (40, 70)])
def test_upsampling_phases_equal_the_transposed_convolution(rows: int, cols: int) -> None:
    """The four 5x5 output phases are the stride-2 transposed convolution and crop of Upsampling."""
    rng = np.random.default_rng(rows * 100 + cols)
    kernel = _integers(rng, PARAM_INT_LIMIT, (1, 1, 8, 8)) * 2.0**-12
    picture = FixedPointPicture(FixedPointLayer(kernel, HALF), (), ())
    x = _integers(rng, 1 << 24, (3, rows, cols))
    for height, width in {(2 * rows, 2 * cols), (2 * rows - 1, 2 * cols - 1), (2 * rows, 2 * cols - 1)}:
        padded = F.pad(x[None], (BORDER,) * 4, mode="replicate")
        full = F.conv_transpose2d(padded, kernel.expand(3, 1, 8, 8), stride=2, groups=3)
        expected = torch.floor(full[0, :, CROP : CROP + height, CROP : CROP + width] + 0.5)
        assert torch.equal(picture._upsample2x(x, height, width), expected)
        out = torch.empty(3, height, width, dtype=torch.float64)  # written in place (directly at even sizes)
        assert picture._upsample2x(x, height, width, out=out) is out and torch.equal(out, expected)


def test_residual_convolution_equals_conv2d() -> None:
    rng = np.random.default_rng(3)
    weight = _integers(rng, PARAM_INT_LIMIT, (3, 3, 3, 3)) * 2.0**-14
    bias = _integers(rng, 1000, (3,)) * 2.0**4 + 0.5
    x = _integers(rng, 1 << 26, (3, 70, 45))  # more rows than one band
    expected = torch.floor(F.conv2d(F.pad(x[None], (1, 1, 1, 1), mode="replicate"), weight, bias)[0])
    assert torch.equal(FixedPointPicture._conv3x3(x, FixedPointLayer(weight, bias)), expected)


def test_residual_block_adds_the_rounded_convolution_and_clamps() -> None:
    """x + round(conv3x3(relu(x))), clamped to the activation limit, as one band loop."""
    rng = np.random.default_rng(5)
    weight = _integers(rng, PARAM_INT_LIMIT, (3, 3, 3, 3)) * 2.0**-8
    bias = _integers(rng, 1000, (3,)) * 2.0**12 + 0.5
    x = _integers(rng, PICTURE_ACT_LIMIT, (3, 37, 29))
    convolved = torch.floor(F.conv2d(F.pad(torch.relu(x)[None], (1, 1, 1, 1), mode="replicate"), weight, bias)[0])
    expected = (x + convolved).clamp(-PICTURE_ACT_LIMIT, PICTURE_ACT_LIMIT)
    assert (x + convolved).abs().max() > PICTURE_ACT_LIMIT  # the clamp is exercised
    assert torch.equal(FixedPointPicture._residual(x, FixedPointLayer(weight, bias), preactivate=True), expected)


def test_widest_layer_at_the_limits_is_exact() -> None:
    """Fan-in 96, every coded integer and activation at the format's extremes: the float64 sums equal
    Python's integer arithmetic, rounded half up, in every chunk of pixels."""
    rng = np.random.default_rng(7)
    fan_in, pixels, step_exp = 96, 300, PARAM_STEP_EXP_MAX
    weights = rng.choice([-PARAM_INT_LIMIT, PARAM_INT_LIMIT], (3, fan_in))
    biases = rng.choice([-PARAM_INT_LIMIT, PARAM_INT_LIMIT], 3)
    activations = rng.choice([-PICTURE_ACT_LIMIT, PICTURE_ACT_LIMIT, PICTURE_ACT_LIMIT - 1], (fan_in, pixels))
    layer = FixedPointLayer(torch.from_numpy(weights * 2.0**-step_exp),
                            torch.from_numpy(biases * 2.0 ** (PICTURE_FRAC_BITS - step_exp) + 0.5))
    picture = FixedPointPicture(FixedPointLayer(torch.zeros(1, 1, 8, 8, dtype=torch.float64), HALF), (layer,), ())
    got = picture._pointwise(torch.from_numpy(activations.astype(np.float64)))
    for out in range(3):
        for pixel in range(0, pixels, 37):
            total = sum(int(weights[out, i]) * int(activations[i, pixel]) for i in range(fan_in))
            total += int(biases[out]) << PICTURE_FRAC_BITS  # in units of 2^-(F + k)
            rounded = (total + (1 << (step_exp - 1))) >> step_exp
            assert got[out, pixel].item() == max(-PICTURE_ACT_LIMIT, min(PICTURE_ACT_LIMIT, rounded))


def test_trained_modules_agree_with_the_float_synthesis() -> None:
    """Quantised weights of a real architecture: the fixed-point planes stay within 2^-16 of float64's."""
    modules = build_modules(load_config(arch="small").arch)
    rng = np.random.default_rng(11)
    coded, step_exp = {}, 10
    for module in (modules.upsampling, modules.synthesis):
        prefix = "upsampling" if module is modules.upsampling else "synthesis"
        for name, parameter in module.named_parameters():
            integers = np.round(parameter.detach().double().numpy() * 2**step_exp).ravel()
            integers += rng.integers(-20, 21, integers.shape)  # away from the initialisation's zeros
            coded[f"{prefix}.{name}"] = (integers, step_exp)
            with torch.no_grad():
                parameter.copy_(torch.from_numpy(integers.reshape(parameter.shape) * 2.0**-step_exp))
    picture = FixedPointPicture.from_coded(modules.upsampling, modules.synthesis, coded)
    grids = [rng.integers(-30, 31, size) for size in grid_sizes(46, 62, 7)]
    fixed = picture.synthesize(picture.upsample(grids)) * 2.0**-PICTURE_FRAC_BITS
    with torch.no_grad():
        modules.synthesis.double()
        modules.upsampling.double()
        tensors = [torch.from_numpy(g.astype(np.float64))[None, None] for g in grids]
        reference = modules.synthesis(modules.upsampling(tensors))
    assert (fixed - reference).abs().max().item() < 2.0**-16
