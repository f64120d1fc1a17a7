"""Raw planar YUV 4:2:0 files (`.yuv`): Y, U, V of each frame in turn, no header."""

from __future__ import annotations

from collections.abc import Iterator

from vcodec.io.errors import InputError
from vcodec.io.formats import ByteSink, VideoInfo, frame_bytes, frame_from_bytes, frame_to_bytes
from vcodec.io.source import VideoSource, selected_count
from vcodec.io.stream import ByteStream
from vcodec.types import Frame


class RawReader(VideoSource):
    """Reads frame after frame; on a file it seeks straight to `start` and checks the file size first."""

    def __init__(
        self,
        stream: ByteStream,
        info: VideoInfo,
        start: int = 0,
        limit: int | None = None,
        file_size: int | None = None,
    ) -> None:
        self._stream = stream
        self.name = stream.name
        self._start = start
        self._limit = limit
        size = frame_bytes(info.width, info.height, info.bitdepth)
        available = None
        if file_size is not None:
            if file_size % size:
                raise InputError(
                    f"{stream.name}: {file_size} bytes is not a whole number of {info.width}x{info.height} "
                    f"{info.pix_fmt} frames ({size} bytes each; {file_size // size} frames and {file_size % size} "
                    "bytes left over): check --size and --pix-fmt"
                )
            available = file_size // size
        self.info = VideoInfo(info.width, info.height, info.bitdepth, info.fps, selected_count(available, start, limit))

    def frames(self) -> Iterator[Frame]:
        size = self.info.frame_bytes
        skipped = self._stream.skip(self._start * size)
        if skipped < self._start * size and skipped % size:
            raise InputError(f"{self.name}: input ends inside frame {skipped // size} while seeking to --start")
        produced = 0
        index = self._start
        while self._limit is None or produced < self._limit:
            data = self._stream.read_exact(size, f"frame {index}")
            if data is None:
                return
            yield frame_from_bytes(data, self.info.width, self.info.height, self.info.bitdepth)
            produced += 1
            index += 1

    def close(self) -> None:
        self._stream.close()


def write_raw_frame(out: ByteSink, frame: Frame) -> None:
    out.write(frame_to_bytes(frame))
