"""Codec components: fixed point, tables, frozen enums, geometry, upsampling, MAC budgets, config, losses."""

from __future__ import annotations

import math
import resource
import sys

import numpy as np
import pytest
import torch

from vcodec.bitstream import frame_header
from vcodec.bitstream.frame_header import FrameHeader, pack_header, parse_header
from vcodec.config import ARM_CONTEXT_LAYOUTS, ARM_CONTEXTS, CHROMA_DOWNSCALES, MAX_ARM_CONTEXT, ConfigError, load_arch, load_config
from vcodec.encoder.allocator import retain_freed_memory
from vcodec.encoder.encode import fit
from vcodec.encoder.target import make_target
from vcodec.encoder.losses import distortion, mse_yuv
from vcodec.encoder.quantize import quantize_parameters
from vcodec.encoder.train import QuantizerSetting, rd_loss
from vcodec.entropy.constants import LOG2_SCALE_FRAC_BITS, LOG2_SCALE_MIN, MEAN_FRAC_BITS
from vcodec.entropy.fixed_point import IntegerArm
from vcodec.entropy.latent_coder import Canvas
from vcodec.entropy.param_coder import flat_parameters, integer_arm, load_flat_parameters, quantize, dequantize
from vcodec.entropy.tables import SCALE_TABLE
from vcodec.model.arm import Arm
from vcodec.encoder.quantizers import soft_round
from vcodec.model.frame_model import FrameModel, macs_per_pixel
from vcodec.model.latents import context_offsets, grid_sizes, priority_order
from vcodec.model.synthesis import Synthesis
from vcodec.model.upsampling import Upsampling
from vcodec.types import SUPPORTED_BITDEPTHS, BitstreamError, Frame

CTC_SIZES = [(416, 240), (832, 480), (1280, 720), (1024, 768), (1920, 1080), (2560, 1600), (3840, 2160),
             (224, 128), (192, 128)]


def test_stored_enumerations_are_frozen() -> None:
    """Reordering any of these silently breaks every stored file."""
    assert frame_header.FORMAT_VERSION == 3  # 2: pre-activated synthesis residual blocks; 3: context layouts
    assert frame_header.READABLE_VERSIONS == (1, 2, 3)
    assert frame_header.ARCH_NAMES == ("custom", "main", "light", "small", "tiny")
    assert ARM_CONTEXT_LAYOUTS == ("raster", "priority")
    assert frame_header.MODULES == ("arm", "upsampling", "synthesis")
    assert frame_header.PARAM_KINDS == ("weight", "bias")
    assert ARM_CONTEXTS == (12, 24)
    assert CHROMA_DOWNSCALES == ("nearest", "mean")
    assert SUPPORTED_BITDEPTHS == (8, 10)


def test_scale_table_is_exact_powers_of_two_at_octaves() -> None:
    steps = 1 << LOG2_SCALE_FRAC_BITS
    for octave in range(len(SCALE_TABLE) // steps):
        assert SCALE_TABLE[octave * steps] == 2.0 ** (LOG2_SCALE_MIN + octave)


def test_integer_arm_golden_output() -> None:
    """Zero weights: the output is the bias, snapped. Mean 1.5 -> index 48; log2 scale 0 -> index 96."""
    arm = IntegerArm(
        weights=(np.zeros((4, 12)), np.zeros((2, 4))),
        biases=(np.zeros(4), np.array([3.0, 0.0])),
        weight_step_exp=1,
        bias_step_exp=1,
    )
    mean_index, scale_index = arm.table_indices(np.ones((5, 12)))
    assert mean_index.tolist() == [int(1.5 * 2**MEAN_FRAC_BITS)] * 5
    assert scale_index.tolist() == [-LOG2_SCALE_MIN * 2**LOG2_SCALE_FRAC_BITS] * 5


def test_integer_arm_follows_float_arm() -> None:
    torch.manual_seed(3)
    arm = Arm(24, (24, 24))
    with torch.no_grad():
        for parameter in arm.parameters():
            parameter.normal_(0, 0.3)
    weight_step, bias_step = 10, 12
    weights = quantize(flat_parameters(arm, "weight"), weight_step)
    biases = quantize(flat_parameters(arm, "bias"), bias_step)
    load_flat_parameters(arm, "weight", dequantize(weights, weight_step))
    load_flat_parameters(arm, "bias", dequantize(biases, bias_step))
    grid = torch.randint(-6, 7, (1, 1, 20, 24)).float()
    with torch.no_grad():
        mean, log2_scale = arm([grid])
    canvas = Canvas.build([(20, 24)], [True], arm.offsets)
    buffer = canvas.place([grid[0, 0].numpy().astype(np.int32)])
    positions = np.sort(canvas.order)
    mean_index, scale_index = integer_arm(arm, weights, biases, weight_step, bias_step).table_indices(canvas.contexts(buffer, positions))
    float_mean = mean.numpy().clip(-128, 128)
    float_scale = np.clip(log2_scale.numpy(), -6, 6)
    assert np.abs(mean_index / 2**MEAN_FRAC_BITS - float_mean).max() < 0.1
    assert np.abs(LOG2_SCALE_MIN + scale_index / 2**LOG2_SCALE_FRAC_BITS - float_scale).max() < 0.1


@pytest.mark.parametrize(("context", "layout"), [(12, "raster"), (24, "raster"), (1, "priority"), (8, "priority"),
                                                 (16, "priority"), (24, "priority"), (MAX_ARM_CONTEXT, "priority")])
def test_context_offsets_are_causal(context: int, layout: str) -> None:
    offsets = context_offsets(context, layout)
    assert len(set(offsets)) == context
    assert all(dy < 0 or (dy == 0 and dx < 0) for dy, dx in offsets)


def test_priority_order_is_frozen() -> None:
    """Bitstream semantics of format 3: the first neighbours of the priority order, written out here."""
    assert len(priority_order()) == MAX_ARM_CONTEXT == 40
    assert priority_order()[:8] == [(0, -1), (-1, 0), (-1, -1), (-1, 1), (0, -2), (-2, 0), (-1, -2), (-1, 2)]
    assert context_offsets(12, "raster")[:5] == [(-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2)]


@pytest.mark.parametrize(("context", "layout"), [(24, "raster"), (8, "priority"), (40, "priority")])
def test_wavefront_respects_every_dependency(context: int, layout: str) -> None:
    canvas = Canvas.build([(9, 13), (5, 7), (3, 4)], [True, True, True], context_offsets(context, layout))
    decoded_at = np.full(canvas.height * canvas.width, -1)
    for step in range(len(canvas.step_starts) - 1):
        decoded_at[canvas.order[canvas.step_starts[step] : canvas.step_starts[step + 1]]] = step
    for position in canvas.order:
        neighbours = decoded_at[position + canvas.offsets]
        assert np.all(neighbours < decoded_at[position])  # -1 = padding, always known


@pytest.mark.parametrize("width,height", CTC_SIZES)
def test_every_ctc_size_upsamples_to_full_resolution(width: int, height: int) -> None:
    sizes = grid_sizes(height, width, 7)
    assert sizes[0] == (height, width)
    grids = [torch.zeros(1, 1, h, w) for h, w in sizes]
    with torch.no_grad():
        assert Upsampling()(grids).shape == (1, 7, height, width)


def test_upsampling_starts_as_bicubic_interpolation() -> None:
    ramp = torch.arange(12.0).repeat(10, 1).view(1, 1, 10, 12)
    with torch.no_grad():
        up = Upsampling().upsample2x(ramp, 20, 24)
    assert torch.allclose(up[0, 0, ::2, ::2], ramp[0, 0])  # even samples are copies
    assert torch.allclose(up[0, 0, 4, 5:19:2], ramp[0, 0, 2, 2:9] + 0.5)  # linear ramps stay linear


def test_upsampling_applies_the_kernel_to_each_channel_alike() -> None:
    """The depthwise channels-last path equals the plain transposed convolution of each channel alone."""
    torch.manual_seed(0)
    upsampling = Upsampling()
    with torch.no_grad():
        upsampling.kernel.add_(0.05 * torch.randn_like(upsampling.kernel))
        x = torch.randn(1, 3, 9, 13)
        up = upsampling.upsample2x(x, 17, 26)
        for channel in range(3):
            padded = torch.nn.functional.pad(x[:, channel : channel + 1], (2, 2, 2, 2), mode="replicate")
            alone = torch.nn.functional.conv_transpose2d(padded, upsampling.kernel, stride=2)[:, :, 7:24, 7:33]
            assert torch.allclose(up[:, channel : channel + 1], alone, atol=1e-5)


def test_mac_budgets() -> None:
    assert macs_per_pixel(load_arch("main"))["total"] <= 2300
    assert macs_per_pixel(load_arch("light"))["total"] <= 800


def test_header_round_trip_and_bounds() -> None:
    header = FrameHeader(width=1920, height=1080, bitdepth=10, arch=load_arch("light"),
                         coded_grids=(True,) * 7, step_exps=(8, 7, 9, 10, 11, 12), scale_indices=(10, 20, 30, 40, 50, 60),
                         param_stream_bytes=8, latent_stream_bytes=12)
    packed = pack_header(header)
    parsed, offset = parse_header(packed + bytes(20))
    assert parsed == header and offset == len(packed)
    with pytest.raises(BitstreamError, match="truncated"):
        parse_header(packed + bytes(19))
    with pytest.raises(BitstreamError, match="version"):
        parse_header(bytes([9]) + packed[1:] + bytes(20))


def test_config_rejects_unknown_and_out_of_range_values() -> None:
    with pytest.raises(ConfigError):
        load_config(iterations=0)
    with pytest.raises(ConfigError):
        load_config(arch="huge")
    with pytest.raises(ConfigError):
        load_config(colour="red")
    cfg = load_config("light", "slow", iterations=7, chroma_downscale="nearest", loss="l1+ssim")
    assert (cfg.preset.iterations, cfg.arch.chroma_downscale, cfg.loss) == (7, "nearest", "l1+ssim")


def test_logmse_is_the_mse_that_psnr_yuv_reports(frame_8bit: Frame) -> None:
    """-10 log10 of the logmse distortion is the 6:1:1 mean of the planes' PSNRs (peak 1), computed here
    from numpy, plane by plane."""
    generator = np.random.default_rng(3)
    target = make_target(frame_8bit, "cpu")
    luma = (target.luma + torch.from_numpy(generator.normal(0, 0.02, target.luma.shape)).float()).clamp(0, 1)
    chroma = (target.chroma + torch.from_numpy(generator.normal(0, 0.005, target.chroma.shape)).float()).clamp(0, 1)
    value = float(distortion("logmse", luma, chroma, target.luma, target.chroma))
    psnrs = [-10 * math.log10(float(np.mean((a.numpy().astype(np.float64) - b.numpy()) ** 2)))
             for a, b in ((luma, target.luma), (chroma[:, :1], target.chroma[:, :1]),
                          (chroma[:, 1:], target.chroma[:, 1:]))]
    assert -10 * math.log10(value) == pytest.approx((6 * psnrs[0] + psnrs[1] + psnrs[2]) / 8, abs=1e-4)
    plain = float(mse_yuv(luma, chroma, target.luma, target.chroma))
    assert value < plain  # chroma's lower MSE pulls the geometric mean down


def test_config_rejects_unknown_optimizer_and_rdoq_passes() -> None:
    with pytest.raises(ConfigError, match="optimizer"):
        load_config(optimizer="sgd")
    with pytest.raises(ConfigError, match="rdoq_passes"):
        load_config(rdoq_passes=-1)


@pytest.mark.parametrize("loss", ["mse", "logmse", "l1", "logcosh", "logcosh+ssim", "l1+ssim"])
def test_every_loss_trains(loss: str, frame_8bit: Frame) -> None:
    torch.manual_seed(0)
    model = FrameModel(load_arch("light"), frame_8bit.height, frame_8bit.width)
    target = make_target(frame_8bit, "cpu")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    values = []
    for _ in range(15):
        value, _, _ = rd_loss(model, target, 0.001, loss, QuantizerSetting("noise"))
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        values.append(float(value.detach()))
    assert np.isfinite(values).all() and values[-1] < values[0]


def test_parameter_quantisation_costs_almost_no_quality(frame_8bit: Frame) -> None:
    """At a small lambda, quantising the trained network must keep the float model's quality: a step
    search that stopped at 2^-6 once cost 3 dB on a 416x240 photo."""
    cfg = load_config("main", "fast", iterations=150)
    model, target, _ = fit(frame_8bit, 0.0001, cfg, None)

    def psnr() -> float:
        with torch.no_grad():
            luma, chroma, _ = model(model.rounded_grids())
        return -10.0 * math.log10(float(mse_yuv(luma, chroma, target.luma, target.chroma)))

    before = psnr()
    quantize_parameters(model, target, 0.0001, cfg.preset.quantization_patience)
    assert psnr() > before - 0.1


def test_soft_round_goes_from_identity_to_rounding() -> None:
    x = torch.linspace(-3.0, 3.0, 601, dtype=torch.float64)
    integers = torch.arange(-3, 4, dtype=torch.float64)
    assert torch.allclose(soft_round(integers, 0.3), integers)  # fixed points at the integers
    assert torch.all(torch.diff(soft_round(x, 0.3)) > 0)  # strictly increasing: gradients everywhere
    assert torch.allclose(soft_round(x, 100.0), x, atol=1e-4)  # hot: the identity
    away_from_half = (x - x.floor() - 0.5).abs() > 0.1
    assert torch.allclose(soft_round(x, 0.01)[away_from_half], torch.round(x)[away_from_half], atol=1e-6)  # cold


def test_synthesis_keeps_a_negative_plane_trainable() -> None:
    """A plane pushed below zero must still receive a gradient (with a ReLU on the planes between the
    residual convolutions, U of a cat photo died this way and stayed near 30 dB at every rate)."""
    synthesis = Synthesis(7, (40,), 2)
    with torch.no_grad():
        synthesis.pointwise[-1].bias.copy_(torch.tensor([0.5, -1.0, 0.5]))
    planes = synthesis(torch.zeros(1, 7, 8, 8))
    target = torch.full_like(planes, 0.5)
    ((planes - target) ** 2).mean().backward()
    grad = synthesis.pointwise[-1].bias.grad
    assert grad is not None and grad[1].abs() > 0.1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
def test_freed_training_memory_is_reused_without_page_faults() -> None:
    """Training allocates and frees the same big tensors each step: the second round must not fault them in."""
    assert retain_freed_memory()

    def faults_of_one_round() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = torch.ones(16 << 20)  # 64 MiB, written through
        del block
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    faults_of_one_round()
    faults_of_one_round()  # (the heap may take a round or two to grow to its working size)
    assert faults_of_one_round() < 1000  # 64 MiB freshly mapped would be ~16000 faults of 4 KiB
