"""PSNR conventions (HM's peak, PSNR-YUV 6:1:1), MS-SSIM on Y, and sequence aggregation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vcodec.metrics import (
    MS_SSIM_MIN_SIDE,
    FramePsnr,
    aggregate_sequence,
    bits_per_pixel,
    frame_mse,
    frame_psnr,
    kilobits_per_second,
    ms_ssim_y,
    mse_from_psnr,
    peak_value,
    psnr_from_mse,
    psnr_from_mses,
)
from vcodec.samples import sample_frames
from vcodec.types import Frame


def _shifted(frame: Frame, delta: int) -> Frame:
    planes = [np.clip(p.astype(np.int32) + delta, 0, frame.max_value).astype(np.uint16) for p in frame.planes()]
    return Frame(*planes, frame.bitdepth)


@pytest.mark.parametrize(("bitdepth", "hm_peak", "peak"), [(8, True, 255), (10, True, 1020), (10, False, 1023)])
def test_peak_follows_hm_or_full_range(bitdepth: int, hm_peak: bool, peak: int) -> None:
    assert peak_value(bitdepth, hm_peak) == peak


def test_peak_1023_reads_0_0255_db_higher_than_hm(frame_10bit: Frame) -> None:
    decoded = _shifted(frame_10bit, 3)
    hm = frame_psnr(frame_10bit, decoded, hm_peak=True)
    full = frame_psnr(frame_10bit, decoded, hm_peak=False)
    assert full.y - hm.y == pytest.approx(20 * math.log10(1023 / 1020), abs=1e-9)
    assert full.y - hm.y == pytest.approx(0.0255, abs=1e-4)


def test_psnr_yuv_weights_luma_six_to_one() -> None:
    assert FramePsnr(40.0, 48.0, 32.0).yuv == pytest.approx((6 * 40 + 48 + 32) / 8)


def test_mse_round_trips_through_psnr(frame_8bit: Frame) -> None:
    decoded = _shifted(frame_8bit, 2)
    mses = frame_mse(frame_8bit, decoded)
    direct = frame_psnr(frame_8bit, decoded)
    via_mse = psnr_from_mses(mses, 8)
    assert (via_mse.y, via_mse.u, via_mse.v) == pytest.approx((direct.y, direct.u, direct.v), abs=1e-12)
    assert mse_from_psnr(psnr_from_mse(mses[0], 255.0), 255.0) == pytest.approx(mses[0], rel=1e-12)
    assert mse_from_psnr(100.0, 255.0) == 0.0


def test_sequence_psnr_is_mean_of_frame_psnrs_and_bits_add_up() -> None:
    quality = aggregate_sequence([FramePsnr(30.0, 40.0, 41.0), FramePsnr(40.0, 44.0, 45.0)], [1000, 3000])
    assert quality.frames == 2 and quality.bits == 4000
    assert (quality.psnr_y, quality.psnr_u, quality.psnr_v) == (35.0, 42.0, 43.0)
    assert quality.psnr_yuv == pytest.approx((6 * 35 + 42 + 43) / 8)
    assert quality.ms_ssim_y is None
    with pytest.raises(ValueError):
        aggregate_sequence([FramePsnr(30.0, 40.0, 41.0)], [1, 2])


def test_rates_per_pixel_and_per_second() -> None:
    assert bits_per_pixel(416 * 240, 416, 240, 1) == 1.0
    assert kilobits_per_second(302352, 2, 30) == pytest.approx(4535.28)  # HM's summary line for Immuno QP22


def test_ms_ssim_on_luma() -> None:
    source = sample_frames(192, MS_SSIM_MIN_SIDE + 1, 1, 8, "chelsea")[0]
    assert ms_ssim_y(source, source) == pytest.approx(1.0, abs=1e-6)
    slightly = ms_ssim_y(source, _shifted(source, 1))
    noisy_y = np.clip(source.y.astype(np.int32) + np.random.default_rng(0).integers(-20, 21, source.y.shape), 0, 255)
    noisy = ms_ssim_y(source, Frame(noisy_y.astype(np.uint16), source.u, source.v, 8))
    assert slightly is not None and noisy is not None
    assert 0.0 < noisy < slightly <= 1.0


def test_ms_ssim_is_none_below_five_scales(frame_8bit: Frame) -> None:
    assert ms_ssim_y(frame_8bit, frame_8bit) is None
