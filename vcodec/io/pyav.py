"""Any other video file, decoded by FFmpeg through PyAV and converted to YUV 4:2:0 at its bit depth.

Sources of 8 bits per sample become `yuv420p`; 9- and 10-bit sources become `yuv420p10le`.
Deeper sources are refused rather than silently rounded. A file FFmpeg reads as a still picture (PNG,
JPEG, ...) is read by vcodec.io.picture instead, which converts its RGB by a named conversion.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import av
import numpy as np

from vcodec.format import check_frame_size
from vcodec.io.errors import InputError, OptionError
from vcodec.io.formats import DEFAULT_FPS, VideoInfo
from vcodec.io.picture import PictureReader, is_picture_demuxer
from vcodec.io.source import VideoSource, selected_count
from vcodec.types import ColorConversion, Frame


def _bitdepth(pix_fmt: str) -> int:
    bits = max(component.bits for component in av.VideoFormat(pix_fmt).components)
    if bits <= 8:
        return 8
    if bits <= 10:
        return 10
    raise InputError(
        f"unsupported pixel format {pix_fmt} ({bits} bits per sample; supported: up to 10); "
        "convert with ffmpeg -pix_fmt yuv420p10le"
    )


def open_with_ffmpeg(
    path: str, start: int = 0, limit: int | None = None, conversion: ColorConversion | None = None
) -> VideoSource:
    """A reader of `path`: a picture's when FFmpeg reads it as a still picture, else a video's.
    `conversion` (a picture's RGB to YUV; default ColorConversion()) is refused for a video."""
    try:
        container = av.open(path)
    except (av.error.FFmpegError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read it as a video or a picture ({err})") from None
    if is_picture_demuxer(container.format.name):
        return PictureReader(container, path, conversion or ColorConversion(), start, limit)
    if conversion is not None:
        container.close()
        raise OptionError(f"{path}: --color-matrix and --color-range apply to RGB pictures; this input is a "
                          "video, whose YUV is coded as it is")
    return PyAVReader(container, path, start, limit)


class PyAVReader(VideoSource):
    """Decodes the first video stream of an opened file (which it closes); frames before `start` are decoded
    and dropped."""

    def __init__(self, container: av.container.InputContainer, path: str, start: int = 0,
                 limit: int | None = None) -> None:
        self.name = path
        self._start = start
        self._limit = limit
        self._container = container
        if not self._container.streams.video:
            self._container.close()
            raise InputError(f"{path}: holds no video stream")
        self._stream = self._container.streams.video[0]
        codec = self._stream.codec_context
        if codec.format is None:
            self._container.close()
            raise InputError(f"{path}: FFmpeg cannot tell the pixel format of its video stream")
        try:
            check_frame_size(codec.width, codec.height, InputError, path)
        except InputError:
            self._container.close()
            raise
        rate = self._stream.average_rate or self._stream.guessed_rate
        fps = Fraction(rate) if rate else DEFAULT_FPS
        available = self._stream.frames or None
        self.info = VideoInfo(
            codec.width, codec.height, _bitdepth(codec.format.name), fps, selected_count(available, start, limit)
        )

    def frames(self) -> Iterator[Frame]:
        target = "yuv420p" if self.info.bitdepth == 8 else "yuv420p10le"
        width, height = self.info.width, self.info.height
        produced = 0
        try:
            for index, decoded in enumerate(self._container.decode(self._stream)):
                if index < self._start:
                    continue
                if self._limit is not None and produced >= self._limit:
                    return
                if (decoded.width, decoded.height) != (width, height):
                    found = f"{decoded.width}x{decoded.height}"
                    raise InputError(f"{self.name}: frame {index} is {found}, not {width}x{height}")
                flat = decoded.reformat(format=target).to_ndarray().reshape(-1)
                luma, chroma = width * height, (width // 2) * (height // 2)
                planes = flat.astype(np.uint16)
                yield Frame(
                    planes[:luma].reshape(height, width),
                    planes[luma : luma + chroma].reshape(height // 2, width // 2),
                    planes[luma + chroma : luma + 2 * chroma].reshape(height // 2, width // 2),
                    self.info.bitdepth,
                )
                produced += 1
        except av.error.FFmpegError as err:
            raise InputError(f"{self.name}: decoding failed ({err})") from None

    def close(self) -> None:
        self._container.close()
