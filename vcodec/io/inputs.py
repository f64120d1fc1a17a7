"""Open any input the command line accepts: raw `.yuv`, `.y4m`, stdin (`-`) or a file FFmpeg decodes.

Raw input needs a size, bit depth and frame rate: an explicit option wins, then the CTC-style file
name (see `vcodec.io.names`), then a video it is meant to be like (`like`: `vcodec psnr` reads a decoded
raw video at its reference's size), then the defaults (8 bit, 25 fps); the size has no default.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

from vcodec.format import check_frame_size
from vcodec.io.errors import InputError, OptionError
from vcodec.io.formats import DEFAULT_FPS, RAW_SUFFIXES, VideoInfo, bitdepth_of_pix_fmt
from vcodec.io.names import infer_from_name
from vcodec.io.raw import RawReader
from vcodec.io.source import VideoSource
from vcodec.io.stream import ByteStream
from vcodec.io.y4m import SIGNATURE, Y4mReader
from vcodec.types import ColorConversion

STDIN = "-"


def _raw_info(
    path: str,
    size: tuple[int, int] | None,
    pix_fmt: str | None,
    bitdepth: int | None,
    fps: Fraction | None,
    like: VideoInfo | None = None,
) -> VideoInfo:
    hints = infer_from_name(path) if path != STDIN else infer_from_name("")
    explicit_depth = None
    if pix_fmt is not None:
        explicit_depth = bitdepth_of_pix_fmt(pix_fmt)
    if bitdepth is not None:
        if bitdepth not in (8, 10):
            raise InputError(f"unsupported bit depth {bitdepth} (supported: 8, 10)")
        if explicit_depth is not None and explicit_depth != bitdepth:
            raise OptionError(f"--pix-fmt {pix_fmt} and --bitdepth {bitdepth} disagree")
        explicit_depth = bitdepth
    if explicit_depth is None and hints.chroma not in (None, "420"):
        raise InputError(f"{path}: the file name says 4:{hints.chroma[1]}:{hints.chroma[2]}; only 4:2:0 is supported")
    depth = explicit_depth or hints.bitdepth or (like.bitdepth if like is not None else 8)
    if depth not in (8, 10):
        raise InputError(f"{path}: unsupported bit depth {depth} (supported: 8, 10)")
    if size is None and (hints.width is None or hints.height is None) and like is not None:
        size = (like.width, like.height)
    if size is None:
        if hints.width is None or hints.height is None:
            where = "stdin" if path == STDIN else f"the name of {path}"
            raise OptionError(f"raw input needs --size WIDTHxHEIGHT (it cannot be inferred from {where})")
        size = (hints.width, hints.height)
    check_frame_size(*size, InputError, "stdin" if path == STDIN else path)
    return VideoInfo(size[0], size[1], depth, fps or hints.fps or DEFAULT_FPS)


def _check_against_header(
    source: VideoSource, size: tuple[int, int] | None, pix_fmt: str | None, bitdepth: int | None
) -> None:
    info = source.info
    if size is not None and size != (info.width, info.height):
        raise OptionError(f"--size {size[0]}x{size[1]} contradicts {source.name} ({info.width}x{info.height})")
    wanted = bitdepth_of_pix_fmt(pix_fmt) if pix_fmt is not None else bitdepth
    if wanted is not None and wanted != info.bitdepth:
        raise OptionError(f"the requested bit depth {wanted} contradicts {source.name} ({info.bitdepth} bit)")


def _with_fps(source: VideoSource, fps: Fraction | None) -> VideoSource:
    if fps is not None:
        source.info = replace(source.info, fps=fps)
    return source


def _refuse_conversion(conversion: ColorConversion | None, path: str) -> None:
    if conversion is not None:
        raise OptionError(f"{path}: --color-matrix and --color-range apply to RGB pictures; this input is "
                          "YUV, coded as it is")


def open_video(
    path: str,
    *,
    size: tuple[int, int] | None = None,
    pix_fmt: str | None = None,
    bitdepth: int | None = None,
    fps: Fraction | None = None,
    start: int = 0,
    frames: int | None = None,
    like: VideoInfo | None = None,
    conversion: ColorConversion | None = None,
) -> VideoSource:
    """Open `path` (or stdin for `-`) and select `frames` frames from frame `start` on.

    `like`: the size and bit depth of a raw input that neither the options nor its name give (y4m and
    FFmpeg inputs describe themselves and ignore it). `conversion`: how a picture's RGB becomes YUV
    (vcodec.io.picture; default ColorConversion()); refused for YUV inputs, which are coded as they are."""
    if start < 0:
        raise OptionError(f"--start {start} is negative")
    if frames is not None and frames <= 0:
        raise OptionError(f"--frames {frames} must be positive")
    if path == STDIN:
        _refuse_conversion(conversion, "stdin")
        stream = ByteStream(sys.stdin.buffer, "stdin")
        if stream.peek(len(SIGNATURE)) == SIGNATURE:
            source: VideoSource = Y4mReader(stream, start, frames)
            _check_against_header(source, size, pix_fmt, bitdepth)
            return _with_fps(source, fps)
        return RawReader(stream, _raw_info(path, size, pix_fmt, bitdepth, fps, like), start, frames)

    file = Path(path)
    if file.is_dir():
        raise InputError(f"{path} is a directory, not a video")
    handle = open(file, "rb")  # FileNotFoundError and PermissionError reach the CLI as I/O errors
    stream = ByteStream(handle, path)
    file_size = file.stat().st_size
    try:
        if stream.peek(len(SIGNATURE)) == SIGNATURE:
            _refuse_conversion(conversion, path)
            source = Y4mReader(stream, start, frames, file_size)
            _check_against_header(source, size, pix_fmt, bitdepth)
            return _with_fps(source, fps)
        if file.suffix.lower() in RAW_SUFFIXES or size is not None:
            _refuse_conversion(conversion, path)
            return RawReader(stream, _raw_info(path, size, pix_fmt, bitdepth, fps, like), start, frames, file_size)
    except BaseException:
        stream.close()
        raise
    stream.close()
    from vcodec.io.pyav import open_with_ffmpeg  # PyAV loads only for the inputs that need it

    source = open_with_ffmpeg(path, start, frames, conversion)
    try:
        _check_against_header(source, size, pix_fmt, bitdepth)
    except BaseException:
        source.close()
        raise
    return _with_fps(source, fps)
