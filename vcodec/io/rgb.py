"""RGB pictures to YUV 4:2:0 frames and back, by a named conversion (vcodec.types.ColorConversion).

The conversion is written out here rather than left to FFmpeg's scaler so that it is exactly the one the
file names, the same on every machine, and its inverse is the one `vcodec decode -o out.png` applies.
The equations are those of ITU-T H.273 (and BT.601 / BT.709): from R', G', B' in [0, 1],

    Y' = Kr R' + Kg G' + Kb B',   Pb = (B' - Y') / (2 (1 - Kb)),   Pr = (R' - Y') / (2 (1 - Kr))

quantised at bit depth d to Y = 219 Y' + 16, C = 224 P + 128 (times 2^(d-8)) in limited range, or to
Y = (2^d - 1) Y', C = (2^d - 1) P + 2^(d-1) in full range, rounded half up and clipped. Chroma is taken
at the centre of each 2x2 block of luma samples (JPEG's siting): the mean of the four, computed before
rounding. On the way back chroma is brought to full resolution by the 3/4-1/4 interpolation of those
centres (JPEG's "fancy upsampling"), then the matrix is inverted.

8-bit pictures become 8-bit frames; deeper ones (16-bit PNG) 10-bit frames, which decode to 16-bit RGB.
An odd width or height is padded by repeating the last column or row (4:2:0 needs even sizes); the
decoded picture is cropped back (vcodec.types.RgbPicture).
"""

from __future__ import annotations

import numpy as np

from vcodec.io.errors import OptionError
from vcodec.types import COLOR_MATRICES, COLOR_RANGES, ColorConversion, Frame

# Kr and Kb of each matrix (H.273 table 4: BT.601 is MatrixCoefficients 5/6, BT.709 is 1); Kg = 1 - Kr - Kb.
LUMA_WEIGHTS: dict[str, tuple[float, float]] = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


def frame_bitdepth_for(picture_bits: int) -> int:
    """The bit depth a picture of `picture_bits` per sample is coded at: 8 stays 8, deeper becomes 10."""
    return 8 if picture_bits <= 8 else 10


def rgb_peak_for(frame_bitdepth: int) -> int:
    """The peak of the RGB samples a frame of `frame_bitdepth` decodes to: 8-bit RGB, or 16-bit above 8."""
    return 255 if frame_bitdepth == 8 else 65535


def rgb_to_ycbcr(rgb: np.ndarray, peak: int, matrix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y' in [0, 1] and Pb, Pr in [-0.5, 0.5], in double precision, from H x W x 3 samples of `peak`."""
    kr, kb = LUMA_WEIGHTS[matrix]
    red, green, blue = (rgb[..., channel].astype(np.float64) / peak for channel in range(3))
    luma = kr * red + (1.0 - kr - kb) * green + kb * blue
    return luma, (blue - luma) / (2.0 * (1.0 - kb)), (red - luma) / (2.0 * (1.0 - kr))


def _round(values: np.ndarray, bitdepth: int) -> np.ndarray:
    """H.273's Round (half away from zero: all values here are positive) and Clip to the bit depth."""
    return np.clip(np.floor(values + 0.5), 0, (1 << bitdepth) - 1).astype(np.uint16)


def quantize(luma: np.ndarray, chroma: tuple[np.ndarray, ...], bitdepth: int, full: bool) -> tuple[np.ndarray, ...]:
    """Integer Y and Cb, Cr codes of normalised Y' and Pb, Pr."""
    if full:
        top = (1 << bitdepth) - 1
        return _round(top * luma, bitdepth), *(_round(top * c + (1 << (bitdepth - 1)), bitdepth) for c in chroma)
    scale = 1 << (bitdepth - 8)
    return _round((219.0 * luma + 16.0) * scale, bitdepth), *(_round((224.0 * c + 128.0) * scale, bitdepth)
                                                               for c in chroma)


def dequantize(luma: np.ndarray, chroma: tuple[np.ndarray, ...], bitdepth: int, full: bool) -> tuple[np.ndarray, ...]:
    """Normalised Y' and Pb, Pr of integer codes (the inverse of `quantize` before rounding)."""
    if full:
        top = float((1 << bitdepth) - 1)
        return luma / top, *((c.astype(np.float64) - (1 << (bitdepth - 1))) / top for c in chroma)
    scale = float(1 << (bitdepth - 8))
    return (luma / scale - 16.0) / 219.0, *((c / scale - 128.0) / 224.0 for c in chroma)


def _pad_even(plane: np.ndarray) -> np.ndarray:
    height, width = plane.shape[:2]
    return np.pad(plane, ((0, height % 2), (0, width % 2)) + ((0, 0),) * (plane.ndim - 2), mode="edge")


def _halve(plane: np.ndarray) -> np.ndarray:
    """The mean of each 2x2 block: chroma sited at the block's centre."""
    return 0.25 * (plane[0::2, 0::2] + plane[0::2, 1::2] + plane[1::2, 0::2] + plane[1::2, 1::2])


def _double_axis(plane: np.ndarray, axis: int) -> np.ndarray:
    """Twice the samples along `axis`: each output is 3/4 of its nearest centre and 1/4 of the next one."""
    padded = np.concatenate([np.take(plane, [0], axis), plane, np.take(plane, [-1], axis)], axis)
    count = plane.shape[axis]
    middle = 0.75 * plane
    before = middle + 0.25 * np.take(padded, range(0, count), axis)
    after = middle + 0.25 * np.take(padded, range(2, count + 2), axis)
    return np.stack([before, after], axis=axis + 1).reshape(
        *plane.shape[:axis], 2 * count, *plane.shape[axis + 1 :]
    )


def _double(plane: np.ndarray) -> np.ndarray:
    return _double_axis(_double_axis(plane, 0), 1)


def rgb_to_frame(rgb: np.ndarray, peak: int, conversion: ColorConversion) -> Frame:
    """The YUV 4:2:0 frame of an H x W x 3 RGB picture whose samples reach `peak` (255, or 65535)."""
    bitdepth = frame_bitdepth_for(int(peak).bit_length())
    luma, pb, pr = rgb_to_ycbcr(_pad_even(rgb), peak, conversion.matrix)
    y, u, v = quantize(luma, (_halve(pb), _halve(pr)), bitdepth, conversion.range == "full")
    return Frame(y, u, v, bitdepth)


def frame_to_rgb(frame: Frame, conversion: ColorConversion, width: int, height: int) -> np.ndarray:
    """The `height` x `width` x 3 RGB picture of a frame (8-bit samples for an 8-bit frame, else 16-bit)."""
    kr, kb = LUMA_WEIGHTS[conversion.matrix]
    luma, pb, pr = dequantize(frame.y.astype(np.float64), (frame.u.astype(np.float64), frame.v.astype(np.float64)),
                              frame.bitdepth, conversion.range == "full")
    pb, pr = _double(pb), _double(pr)
    red = luma + 2.0 * (1.0 - kr) * pr
    blue = luma + 2.0 * (1.0 - kb) * pb
    green = (luma - kr * red - kb * blue) / (1.0 - kr - kb)
    peak = rgb_peak_for(frame.bitdepth)
    rgb = np.stack([red, green, blue], axis=-1)[:height, :width]
    samples = np.clip(np.floor(rgb * peak + 0.5), 0, peak)
    return samples.astype(np.uint8 if peak == 255 else np.uint16)


def parse_conversion(matrix: str | None, color_range: str | None) -> ColorConversion | None:
    """The conversion `--color-matrix` and `--color-range` ask for (the default for the one not given), or
    None when neither is given (a picture then takes ColorConversion's default)."""
    if matrix is None and color_range is None:
        return None
    default = ColorConversion()
    matrix = (matrix or default.matrix).strip().lower()
    color_range = (color_range or default.range).strip().lower()
    if matrix not in COLOR_MATRICES:
        raise OptionError(f"--color-matrix {matrix}: expected {' or '.join(COLOR_MATRICES)}")
    if color_range not in COLOR_RANGES:
        raise OptionError(f"--color-range {color_range}: expected {' or '.join(COLOR_RANGES)}")
    return ColorConversion(matrix, color_range)
