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
from vcodec.model import fixed_point
from vcodec.model.fixed_point import FixedPointLayer, FixedPointPicture
from vcodec.model.modules import build_modules
from vcodec.model.upsampling import BORDER, CROP
from vcodec.shapes import grid_sizes

HALF = np.array([0.5])


def _integers(rng: np.random.Generator, limit: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(-limit, limit + 1, shape)


def _torch(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(array, dtype=np.float64))


@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (2, 3), (5, 7), (33, 17), (40, 70)])
def test_upsampling_phases_equal_the_transposed_convolution(rows: int, cols: int) -> None:
    """The four output phases are the stride-2 transposed convolution and crop of Upsampling."""
    rng = np.random.default_rng(rows * 100 + cols)
    kernel = _integers(rng, PARAM_INT_LIMIT, (1, 1, 8, 8)) * 2.0**-12
    picture = FixedPointPicture(FixedPointLayer(kernel, HALF), (), ())
    x = _integers(rng, 1 << 24, (3, rows, cols)).astype(np.int32)
    for height, width in {(2 * rows, 2 * cols), (2 * rows - 1, 2 * cols - 1), (2 * rows, 2 * cols - 1)}:
        padded = F.pad(_torch(x)[None], (BORDER,) * 4, mode="replicate")
        full = F.conv_transpose2d(padded, _torch(kernel).expand(3, 1, 8, 8), stride=2, groups=3)
        expected = torch.floor(full[0, :, CROP : CROP + height, CROP : CROP + width] + 0.5).numpy()
        np.testing.assert_array_equal(picture._upsample2x(x, height, width), expected)
        stack = np.zeros((4, height, width), dtype=np.int32)  # written into the first channels of a stack
        picture._upsample2x(x, height, width, out=stack[:3])
        np.testing.assert_array_equal(stack[:3], expected)
        assert not stack[3].any()


def test_residual_convolution_equals_conv2d() -> None:
    """Without pre-activation a block is x + round(conv3x3(x)) (replicate padding), clamped."""
    rng = np.random.default_rng(3)
    weight = _integers(rng, PARAM_INT_LIMIT, (3, 3, 3, 3)) * 2.0**-14
    bias = _integers(rng, 1000, (3,)) * 2.0**4 + 0.5
    x = _integers(rng, 1 << 26, (3, 70, 45)).astype(np.int32)  # more rows than a thread's share
    convolved = torch.floor(F.conv2d(F.pad(_torch(x)[None], (1, 1, 1, 1), mode="replicate"), _torch(weight), _torch(bias))[0])
    expected = (_torch(x) + convolved).clamp(-PICTURE_ACT_LIMIT, PICTURE_ACT_LIMIT).numpy()
    got = FixedPointPicture._residual(x, FixedPointLayer(weight, bias), preactivate=False)
    np.testing.assert_array_equal(got, expected)


def test_residual_block_adds_the_rounded_convolution_and_clamps() -> None:
    """x + round(conv3x3(relu(x))), clamped to the activation limit."""
    rng = np.random.default_rng(5)
    weight = _integers(rng, PARAM_INT_LIMIT, (3, 3, 3, 3)) * 2.0**-8
    bias = _integers(rng, 1000, (3,)) * 2.0**12 + 0.5
    x = _integers(rng, PICTURE_ACT_LIMIT, (3, 37, 29)).astype(np.int32)
    relu = torch.relu(_torch(x))
    convolved = torch.floor(F.conv2d(F.pad(relu[None], (1, 1, 1, 1), mode="replicate"), _torch(weight), _torch(bias))[0])
    expected = (_torch(x) + convolved).clamp(-PICTURE_ACT_LIMIT, PICTURE_ACT_LIMIT).numpy()
    assert (_torch(x) + convolved).abs().max() > PICTURE_ACT_LIMIT  # the clamp is exercised
    np.testing.assert_array_equal(FixedPointPicture._residual(x, FixedPointLayer(weight, bias), preactivate=True), expected)


def test_widest_layer_at_the_limits_is_exact() -> None:
    """Fan-in 96, every coded integer and activation at the format's extremes: the double sums equal
    Python's integer arithmetic, rounded half up, in every tile of pixels."""
    rng = np.random.default_rng(7)
    fan_in, pixels, step_exp = 96, 300, PARAM_STEP_EXP_MAX
    weights = rng.choice([-PARAM_INT_LIMIT, PARAM_INT_LIMIT], (3, fan_in))
    biases = rng.choice([-PARAM_INT_LIMIT, PARAM_INT_LIMIT], 3)
    activations = rng.choice([-PICTURE_ACT_LIMIT, PICTURE_ACT_LIMIT, PICTURE_ACT_LIMIT - 1], (fan_in, pixels))
    layer = FixedPointLayer(weights * 2.0**-step_exp, biases * 2.0 ** (PICTURE_FRAC_BITS - step_exp) + 0.5)
    picture = FixedPointPicture(FixedPointLayer(np.zeros((1, 1, 8, 8)), HALF), (layer,), ())
    got = picture._pointwise(activations.astype(np.int32))
    for out in range(3):
        for pixel in range(0, pixels, 37):
            total = sum(int(weights[out, i]) * int(activations[i, pixel]) for i in range(fan_in))
            total += int(biases[out]) << PICTURE_FRAC_BITS  # in units of 2^-(F + k)
            rounded = (total + (1 << (step_exp - 1))) >> step_exp
            assert got[out, pixel] == max(-PICTURE_ACT_LIMIT, min(PICTURE_ACT_LIMIT, rounded))


def _reference_pointwise(layers: tuple[FixedPointLayer, ...], x: np.ndarray) -> np.ndarray:
    """The 1x1 layers as float64 matrix products (exact here), floored and clamped: ReLU but the last."""
    y = _torch(x)
    for index, layer in enumerate(layers):
        y = torch.floor(_torch(layer.weight) @ y + _torch(layer.bias)[:, None])
        y = y.clamp(0 if index < len(layers) - 1 else -PICTURE_ACT_LIMIT, PICTURE_ACT_LIMIT)
    return y.numpy()


@pytest.mark.parametrize("widths", [(7, 6, 5, 3), (2, 9, 3), (7, 40, 3)])
def test_pointwise_layers_of_any_width_equal_the_matrix_products(widths: tuple[int, ...]) -> None:
    """Widths that are not multiples of the kernel's blocks of outputs, and a pixel count that is not a
    multiple of its tile."""
    rng = np.random.default_rng(sum(widths))
    layers = tuple(FixedPointLayer(_integers(rng, PARAM_INT_LIMIT, (b, a)) * 2.0**-12,
                                   _integers(rng, 2000, (b,)) * 2.0**8 + 0.5) for a, b in zip(widths[:-1], widths[1:]))
    picture = FixedPointPicture(FixedPointLayer(np.zeros((1, 1, 8, 8)), HALF), layers, ())
    x = _integers(rng, 1 << 22, (widths[0], 1000)).astype(np.int32)
    np.testing.assert_array_equal(picture._pointwise(x), _reference_pointwise(layers, x))


def _trained_picture(rng: np.random.Generator) -> tuple[FixedPointPicture, object]:
    modules = build_modules(load_config(arch="small").arch)
    coded, step_exp = {}, 10
    for module in (modules.upsampling, modules.synthesis):
        prefix = "upsampling" if module is modules.upsampling else "synthesis"
        for name, parameter in module.named_parameters():
            integers = np.round(parameter.detach().double().numpy() * 2**step_exp).ravel()
            integers += rng.integers(-20, 21, integers.shape)  # away from the initialisation's zeros
            coded[f"{prefix}.{name}"] = (integers, step_exp)
            with torch.no_grad():
                parameter.copy_(torch.from_numpy(integers.reshape(parameter.shape) * 2.0**-step_exp))
    widths = (modules.synthesis.pointwise[0].in_features, *(layer.out_features for layer in modules.synthesis.pointwise))
    return FixedPointPicture.from_coded(coded, widths, len(modules.synthesis.residual)), modules


def test_trained_modules_agree_with_the_float_synthesis() -> None:
    """Quantised weights of a real architecture: the fixed-point planes stay within 2^-16 of float64's."""
    rng = np.random.default_rng(11)
    picture, modules = _trained_picture(rng)
    grids = [rng.integers(-30, 31, size) for size in grid_sizes(46, 62, 7)]
    fixed = picture.synthesize(picture.upsample(grids)) * 2.0**-PICTURE_FRAC_BITS
    with torch.no_grad():
        modules.synthesis.double()
        modules.upsampling.double()
        tensors = [torch.from_numpy(g.astype(np.float64))[None, None] for g in grids]
        reference = modules.synthesis(modules.upsampling(tensors))[0].numpy()
    assert np.abs(fixed - reference).max() < 2.0**-16


@pytest.mark.parametrize("threads", [1, 3])
def test_the_picture_does_not_depend_on_the_threads(threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows and pixels are shared among threads in pieces: any count gives the same planes."""
    rng = np.random.default_rng(13)
    picture, _ = _trained_picture(rng)
    grids = [rng.integers(-30, 31, size) for size in grid_sizes(300, 270, 7)]  # several pieces per stage
    expected = picture.synthesize(picture.upsample(grids))
    monkeypatch.setattr(fixed_point, "_threads", lambda: threads)
    np.testing.assert_array_equal(picture.synthesize(picture.upsample(grids)), expected)


def test_the_residual_blocks_may_write_into_the_upsampled_stack() -> None:
    """The decoder lets the residual blocks reuse the upsampled activations' memory: the same planes."""
    rng = np.random.default_rng(17)
    picture, _ = _trained_picture(rng)
    assert len(picture.residual) >= 2  # the blocks alternate between the stack's two halves
    grids = [rng.integers(-30, 31, size) for size in grid_sizes(90, 140, 7)]
    expected = picture.synthesize(picture.upsample(grids))
    upsampled = picture.upsample(grids)
    np.testing.assert_array_equal(picture.synthesize(upsampled, reuse_input=True), expected)
    assert not np.array_equal(upsampled, picture.upsample(grids))  # it was written into


@pytest.mark.parametrize("bitdepth", [8, 10])
@pytest.mark.parametrize("chroma_downscale", ["mean", "nearest"])
def test_samples_are_the_rounded_activations(bitdepth: int, chroma_downscale: str) -> None:
    """floor(a peak 2^-F + 1/2), clipped, on exact doubles (the format's definition) against the integer
    conversion; activations below zero, above the peak and on rounding ties included."""
    rng = np.random.default_rng(bitdepth)
    one, peak = 1 << PICTURE_FRAC_BITS, (1 << bitdepth) - 1
    planes = rng.integers(-one // 4, one + one // 4, (3, 10, 14)).astype(np.int32)
    planes[0, 0, :4] = [0, one, -1, one + 1]
    tie = (one // 2) * pow(peak, -1, one) % one  # tie * peak = one/2 (mod one): a sample and a half exactly
    planes[0, 1, :2] = [tie, tie - one]
    assert (tie * peak) % one == one // 2
    frame = fixed_point.planes_to_frame(planes, chroma_downscale, bitdepth)

    def samples(values: np.ndarray) -> np.ndarray:
        return np.clip(np.floor(values * (peak / one) + 0.5), 0, peak).astype(np.uint16)

    chroma = planes[1:].astype(np.float64)
    if chroma_downscale == "mean":
        chroma = (chroma[:, 0::2, 0::2] + chroma[:, 0::2, 1::2] + chroma[:, 1::2, 0::2] + chroma[:, 1::2, 1::2]) / 4
    else:
        chroma = chroma[:, ::2, ::2]
    np.testing.assert_array_equal(frame.y, samples(planes[0].astype(np.float64)))
    np.testing.assert_array_equal(frame.u, samples(chroma[0]))
    np.testing.assert_array_equal(frame.v, samples(chroma[1]))
    assert frame.y.min() == 0 and frame.y.max() == peak
