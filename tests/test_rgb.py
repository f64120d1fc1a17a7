"""The RGB <-> YUV conversions of pictures (vcodec.io.rgb), against values computed elsewhere: the published
8-bit codes of the primaries, and FFmpeg's own scaler (swscale through PyAV) for the same matrix and range."""

from __future__ import annotations

import av
import numpy as np
import pytest
from av.video.reformatter import Interpolation
from skimage import data

from vcodec.io import OptionError
from vcodec.io.rgb import dequantize, frame_to_rgb, parse_conversion, quantize, rgb_to_frame, rgb_to_ycbcr
from vcodec.metrics import rgb_psnr
from vcodec.types import COLOR_MATRICES, COLOR_RANGES, ColorConversion

CONVERSIONS = [ColorConversion(matrix, color_range) for matrix in COLOR_MATRICES for color_range in COLOR_RANGES]
IDS = [f"{c.matrix}-{c.range}" for c in CONVERSIONS]

# 8-bit (Y, Cb, Cr) of red, green, blue, white and black as the standards' tables and JFIF give them
# (e.g. BT.601 limited red 81/90/240, BT.709 limited red 63/102/240, JFIF red 76/85/255).
PRIMARIES = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]], dtype=np.uint8)
EXPECTED_CODES = {
    ("bt601", "limited"): [(81, 90, 240), (145, 54, 34), (41, 240, 110), (235, 128, 128), (16, 128, 128)],
    ("bt709", "limited"): [(63, 102, 240), (173, 42, 26), (32, 240, 118), (235, 128, 128), (16, 128, 128)],
    ("bt601", "full"): [(76, 85, 255), (150, 44, 21), (29, 255, 107), (255, 128, 128), (0, 128, 128)],
    ("bt709", "full"): [(54, 99, 255), (182, 30, 12), (18, 255, 116), (255, 128, 128), (0, 128, 128)],
}
SWSCALE = {"bt601": "ITU601", "bt709": "ITU709", "limited": "MPEG", "full": "JPEG"}
ACCURATE = Interpolation.BILINEAR | Interpolation.ACCURATE_RND


def photo_and_noise() -> np.ndarray:
    """A 96x64 RGB test picture: a crop of a photo above uniform noise (every code value, saturated colours)."""
    photo = data.astronaut()[100:148, 100:164]
    noise = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.concatenate([photo, noise]))


def codes_444(rgb: np.ndarray, conversion: ColorConversion, bitdepth: int = 8) -> np.ndarray:
    luma, pb, pr = rgb_to_ycbcr(rgb, 255, conversion.matrix)
    return np.stack(quantize(luma, (pb, pr), bitdepth, conversion.range == "full"))


@pytest.mark.parametrize("conversion", CONVERSIONS, ids=IDS)
def test_primaries_have_their_published_codes(conversion: ColorConversion) -> None:
    codes = codes_444(PRIMARIES, conversion)[:, 0, :].T
    assert [tuple(map(int, c)) for c in codes] == EXPECTED_CODES[(conversion.matrix, conversion.range)]


@pytest.mark.parametrize("conversion", CONVERSIONS, ids=IDS)
def test_conversion_agrees_with_ffmpeg_within_one_code(conversion: ColorConversion) -> None:
    """Both directions, 4:4:4 (no chroma resampling), against swscale told the same matrix and range."""
    rgb = photo_and_noise()
    space, color_range = SWSCALE[conversion.matrix], SWSCALE[conversion.range]
    theirs = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv444p", dst_colorspace=space, dst_color_range=color_range, interpolation=ACCURATE)
    theirs_yuv = theirs.to_ndarray().reshape(3, *rgb.shape[:2]).astype(int)
    assert np.abs(codes_444(rgb, conversion).astype(int) - theirs_yuv).max() <= 1
    # And back: their YUV to RGB by our inverse, against theirs.
    back = theirs.reformat(format="rgb24", src_colorspace=space, src_color_range=color_range,
                           interpolation=ACCURATE).to_ndarray().astype(int)
    kr, kb = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}[conversion.matrix]
    luma, pb, pr = dequantize(theirs_yuv[0].astype(float), (theirs_yuv[1].astype(float), theirs_yuv[2].astype(float)),
                              8, conversion.range == "full")
    red, blue = luma + 2 * (1 - kr) * pr, luma + 2 * (1 - kb) * pb
    ours = np.clip(np.floor(np.stack([red, (luma - kr * red - kb * blue) / (1 - kr - kb), blue], -1) * 255 + 0.5),
                   0, 255)
    assert np.abs(ours - back).max() <= 1


def test_another_matrix_or_range_is_far_from_ffmpeg() -> None:
    """The comparison above can fail: the default conversion is several codes from swscale's BT.709 limited."""
    rgb = photo_and_noise()
    theirs = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv444p", dst_colorspace="ITU709", dst_color_range="MPEG", interpolation=ACCURATE)
    difference = np.abs(codes_444(rgb, ColorConversion()).astype(int)
                        - theirs.to_ndarray().reshape(3, *rgb.shape[:2]).astype(int))
    assert difference.max() > 10


@pytest.mark.parametrize("conversion", CONVERSIONS, ids=IDS)
def test_chroma_of_a_flat_2x2_block_is_its_colour(conversion: ColorConversion) -> None:
    """4:2:0 takes the mean of each 2x2 block: on a picture of flat blocks it equals the 4:4:4 codes there."""
    blocks = photo_and_noise()[::2, ::2]
    rgb = blocks.repeat(2, axis=0).repeat(2, axis=1)
    frame = rgb_to_frame(rgb, 255, conversion)
    full = codes_444(blocks, conversion)
    assert np.array_equal(frame.y[::2, ::2], full[0]) and np.array_equal(frame.u, full[1])
    assert np.array_equal(frame.v, full[2])


@pytest.mark.parametrize("conversion", CONVERSIONS, ids=IDS)
def test_round_trip_through_yuv_420(conversion: ColorConversion) -> None:
    """RGB -> YUV 4:2:0 -> RGB loses only what 4:2:0 and rounding lose: a photo comes back above 33 dB, a
    grey picture (no chroma) within a code or two."""
    photo = data.astronaut()[::4, ::4]
    back = frame_to_rgb(rgb_to_frame(photo, 255, conversion), conversion, photo.shape[1], photo.shape[0])
    assert back.dtype == np.uint8 and rgb_psnr(photo, back, 255).rgb > 33
    grey = np.repeat(data.camera()[::8, ::8, None], 3, axis=2)
    back = frame_to_rgb(rgb_to_frame(grey, 255, conversion), conversion, grey.shape[1], grey.shape[0])
    assert np.abs(back.astype(int) - grey).max() <= (0 if conversion.range == "full" else 2)


def test_odd_sizes_are_padded_and_cropped_back() -> None:
    rgb = data.astronaut()[:47, :33]
    frame = rgb_to_frame(rgb, 255, ColorConversion())
    assert (frame.width, frame.height) == (34, 48)
    assert np.array_equal(frame.y[:, -1], frame.y[:, -2]) and np.array_equal(frame.y[-1], frame.y[-2])
    back = frame_to_rgb(frame, ColorConversion(), 33, 47)
    assert back.shape == (47, 33, 3) and rgb_psnr(rgb, back, 255).rgb > 30


def test_sixteen_bit_pictures_become_ten_bit_frames_and_come_back_as_sixteen_bit() -> None:
    rgb16 = data.astronaut()[::4, ::4].astype(np.uint16) * 257
    frame = rgb_to_frame(rgb16, 65535, ColorConversion("bt709", "limited"))
    assert frame.bitdepth == 10 and int(frame.y.max()) <= 940 and int(frame.y.min()) >= 64
    back = frame_to_rgb(frame, ColorConversion("bt709", "limited"), rgb16.shape[1], rgb16.shape[0])
    assert back.dtype == np.uint16 and rgb_psnr(rgb16, back, 65535).rgb > 33


def test_conversion_options() -> None:
    assert parse_conversion(None, None) is None
    assert parse_conversion("BT709", None) == ColorConversion("bt709", "full")
    assert parse_conversion(None, "limited") == ColorConversion("bt601", "limited")
    with pytest.raises(OptionError, match="--color-matrix bt2020: expected bt601 or bt709"):
        parse_conversion("bt2020", None)
    with pytest.raises(OptionError, match="--color-range tv: expected limited or full"):
        parse_conversion(None, "tv")
    assert str(ColorConversion()) == "BT.601 full range"
