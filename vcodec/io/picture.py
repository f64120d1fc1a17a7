"""Still pictures in and out: PNG (or anything FFmpeg reads as a picture) as RGB, coded as one YUV frame.

A file is a picture when FFmpeg reads it with one of its image demuxers (`image2`, `png_pipe`,
`jpeg_pipe`, `webp_pipe`, ...). It is decoded to RGB by PyAV (a grey picture becomes R = G = B, a JPEG's
own YUV is converted to RGB first) and turned into YUV 4:2:0 by the named conversion of vcodec.io.rgb:
8 bits per sample become an 8-bit frame, deeper pictures (16-bit PNG) a 10-bit one. An alpha channel is
dropped when every pixel is opaque and refused otherwise (vcodec codes no transparency). Pictures are
written as PNG: 8-bit RGB from 8-bit frames, 16-bit RGB from 10-bit ones.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from vcodec.format import check_frame_size
from vcodec.io.errors import InputError
from vcodec.io.formats import DEFAULT_FPS, VideoInfo
from vcodec.io.output import STDIO, atomic_output
from vcodec.io.rgb import frame_bitdepth_for, frame_to_rgb, rgb_to_frame
from vcodec.io.source import VideoSource, selected_count
from vcodec.types import ColorConversion, Frame, RgbPicture

# FFmpeg's demuxers of still pictures: image2 (and image2pipe), and one `<codec>_pipe` per picture format.
_PICTURE_DEMUXERS = frozenset({"image2", "image2pipe"})
PICTURE_SUFFIXES = frozenset({".png"})  # what `vcodec decode` writes as a picture


def is_picture_demuxer(name: str) -> bool:
    """Whether FFmpeg's demuxer `name` (`container.format.name`) reads still pictures."""
    return any(part in _PICTURE_DEMUXERS or part.endswith("_pipe") for part in name.split(","))


@dataclass(frozen=True)
class RgbImage:
    """The H x W x 3 samples of a picture (uint8 up to 8 bits a sample, else uint16 scaled to 16 bits)."""

    samples: np.ndarray

    @property
    def peak(self) -> int:
        return 255 if self.samples.dtype == np.uint8 else 65535

    @property
    def width(self) -> int:
        return int(self.samples.shape[1])

    @property
    def height(self) -> int:
        return int(self.samples.shape[0])


def _open(path: str) -> av.container.InputContainer:
    try:
        return av.open(path)
    except (av.error.FFmpegError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read it as a picture or a video ({err})") from None


def decode_picture(container: av.container.InputContainer, name: str) -> RgbImage:
    """The one picture of an opened picture file, as RGB; an animation or a transparent picture is refused."""
    if not container.streams.video:
        raise InputError(f"{name}: holds no picture")
    try:
        decoded = container.decode(container.streams.video[0])
        frame = next(decoded, None)
        if frame is None:
            raise InputError(f"{name}: holds no picture")
        if next(decoded, None) is not None:
            raise InputError(f"{name}: holds more than one picture (an animation); vcodec codes one picture "
                             "per file: convert it to a video (e.g. ffmpeg -i IN -f yuv4mpegpipe OUT.y4m)")
        deep = max(component.bits for component in frame.format.components) > 8
        alpha = frame.format.name == "pal8" or any(component.is_alpha for component in frame.format.components)
        target = ("rgba64le" if alpha else "rgb48le") if deep else ("rgba" if alpha else "rgb24")
        samples = frame.reformat(format=target).to_ndarray()
    except av.error.FFmpegError as err:
        raise InputError(f"{name}: decoding failed ({err})") from None
    if alpha:
        peak = 65535 if deep else 255
        if (samples[..., 3] != peak).any():
            raise InputError(f"{name}: has transparent pixels; vcodec codes no alpha channel: flatten it onto a "
                             "background, or drop it (ffmpeg -i IN -pix_fmt rgb24 OUT.png)")
        samples = samples[..., :3]
    return RgbImage(np.ascontiguousarray(samples))


def read_picture(path: str) -> RgbImage:
    """A picture file as RGB; a video (or anything FFmpeg does not read as a picture) is refused."""
    container = _open(path)
    try:
        if not is_picture_demuxer(container.format.name):
            raise InputError(f"{path}: is not a picture (FFmpeg reads it as {container.format.name} video)")
        return decode_picture(container, path)
    finally:
        container.close()


def is_picture(path: str) -> bool:
    """Whether FFmpeg reads `path` as a still picture (False for anything it cannot open)."""
    try:
        container = av.open(path)
    except (av.error.FFmpegError, UnicodeDecodeError, OSError):
        return False
    try:
        return is_picture_demuxer(container.format.name)
    finally:
        container.close()


class PictureReader(VideoSource):
    """A picture as a one-frame video: YUV 4:2:0 by `conversion`, an odd size padded to even.

    `info.picture` records the conversion and the picture's own size, which the container keeps."""

    def __init__(
        self, container: av.container.InputContainer, path: str, conversion: ColorConversion, start: int = 0,
        limit: int | None = None,
    ) -> None:
        self.name = path
        self._start = start
        self._limit = limit
        self._conversion = conversion
        try:
            self._image = decode_picture(container, path)
        finally:
            container.close()
        picture = RgbPicture(conversion, self._image.width, self._image.height)
        width, height = picture.coded_size()
        check_frame_size(width, height, InputError, path)
        bitdepth = frame_bitdepth_for(self._image.peak.bit_length())
        self.info = VideoInfo(width, height, bitdepth, DEFAULT_FPS, selected_count(1, start, limit), picture)

    def frames(self) -> Iterator[Frame]:
        if self.info.frame_count:
            yield rgb_to_frame(self._image.samples, self._image.peak, self._conversion)


def encode_png(samples: np.ndarray) -> bytes:
    """A PNG of H x W x 3 RGB samples: 8-bit for uint8, 16-bit for uint16."""
    codec = av.CodecContext.create("png", "w")
    codec.height, codec.width = samples.shape[:2]
    codec.pix_fmt = "rgb24" if samples.dtype == np.uint8 else "rgb48be"
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(samples), format=codec.pix_fmt)
    return b"".join(bytes(packet) for packet in [*codec.encode(frame), *codec.encode(None)])


def write_picture(path: str, frame: Frame, picture: RgbPicture, overwrite: bool = False) -> None:
    """Write a decoded frame as the PNG picture it was coded from (`-`: to stdout), atomically to a file."""
    data = encode_png(frame_to_rgb(frame, picture.conversion, picture.width, picture.height))
    if path == STDIO:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        return
    with atomic_output(Path(path), overwrite) as handle:
        handle.write(data)
