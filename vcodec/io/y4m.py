"""YUV4MPEG2 (`.y4m`) streams: a text header line, then `FRAME` lines each followed by planar data.

Only 4:2:0 is accepted: colour spaces `420`, `420jpeg`, `420paldv`, `420mpeg2` (8 bit; the chroma
siting does not change the samples) and `420p10` (10 bit, 2-byte little-endian samples). A stream
without a `C` tag is 4:2:0 8-bit, as the format specifies.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

from vcodec.format import check_frame_size
from vcodec.io.errors import InputError
from vcodec.io.formats import ByteSink, VideoInfo, frame_from_bytes, frame_to_bytes
from vcodec.io.source import VideoSource, selected_count
from vcodec.io.stream import ByteStream
from vcodec.types import Frame

SIGNATURE = b"YUV4MPEG2"
MAX_HEADER_BYTES = 4096
_COLORSPACES: dict[str, int] = {"420": 8, "420jpeg": 8, "420paldv": 8, "420mpeg2": 8, "420p10": 10}
_OUTPUT_COLORSPACE: dict[int, str] = {8: "C420jpeg XYSCSS=420JPEG", 10: "C420p10 XYSCSS=420P10"}


def parse_header(line: bytes, name: str = "y4m") -> VideoInfo:
    """The stream header line (with or without its newline) as a VideoInfo without frame count."""
    try:
        text = line.decode("ascii").rstrip("\n")
    except UnicodeDecodeError:
        raise InputError(f"{name}: the YUV4MPEG2 header is not ASCII text") from None
    fields = text.split(" ")
    if fields[0] != SIGNATURE.decode():
        raise InputError(f"{name}: not a YUV4MPEG2 stream")
    width = height = None
    fps = Fraction(25)
    colorspace = "420jpeg"
    for field in fields[1:]:
        if not field:
            continue
        tag, value = field[0], field[1:]
        try:
            if tag == "W":
                width = int(value)
            elif tag == "H":
                height = int(value)
            elif tag == "F":
                num, den = value.split(":")
                if int(num) <= 0 or int(den) <= 0:
                    raise ValueError(value)
                fps = Fraction(int(num), int(den))
            elif tag == "C":
                colorspace = value
        except ValueError:
            raise InputError(f"{name}: bad YUV4MPEG2 header field {field!r}") from None
    if width is None or height is None:
        raise InputError(f"{name}: the YUV4MPEG2 header gives no width or height")
    check_frame_size(width, height, InputError, name)
    if colorspace not in _COLORSPACES:
        raise InputError(
            f"{name}: unsupported pixel format C{colorspace} (supported: "
            f"{', '.join('C' + c for c in _COLORSPACES)}); convert with ffmpeg -pix_fmt yuv420p or yuv420p10le"
        )
    return VideoInfo(width, height, _COLORSPACES[colorspace], fps)


def format_header(info: VideoInfo) -> bytes:
    fps = info.fps
    return (
        f"YUV4MPEG2 W{info.width} H{info.height} F{fps.numerator}:{fps.denominator} Ip A1:1 "
        f"{_OUTPUT_COLORSPACE[info.bitdepth]}\n"
    ).encode("ascii")


class Y4mReader(VideoSource):
    """Frames of a y4m stream; frames before `start` are skipped without being parsed."""

    def __init__(
        self, stream: ByteStream, start: int = 0, limit: int | None = None, file_size: int | None = None
    ) -> None:
        self._stream = stream
        self.name = stream.name
        self._start = start
        self._limit = limit
        line = stream.readline(MAX_HEADER_BYTES, "the YUV4MPEG2 header")
        if line is None:
            raise InputError(f"{stream.name}: empty input")
        info = parse_header(line, stream.name)
        available = None
        if file_size is not None:
            # Every frame line is "FRAME\n" in practice; with parameters the count is only an estimate.
            per_frame = info.frame_bytes + len(b"FRAME\n")
            available = (file_size - len(line)) // per_frame
        self.info = VideoInfo(info.width, info.height, info.bitdepth, info.fps, selected_count(available, start, limit))

    def _next_payload(self, index: int) -> bytes | None:
        line = self._stream.readline(MAX_HEADER_BYTES, f"the header of frame {index}")
        if line is None:
            return None
        if not line.startswith(b"FRAME"):
            raise InputError(f"{self.name}: frame {index} does not start with FRAME")
        payload = self._stream.read_exact(self.info.frame_bytes, f"frame {index}")
        if payload is None:
            raise InputError(f"{self.name}: input ends after the FRAME line of frame {index}")
        return payload

    def frames(self) -> Iterator[Frame]:
        index = 0
        while index < self._start:
            line = self._stream.readline(MAX_HEADER_BYTES, f"the header of frame {index}")
            if line is None:
                return
            if not line.startswith(b"FRAME"):
                raise InputError(f"{self.name}: frame {index} does not start with FRAME")
            if self._stream.skip(self.info.frame_bytes) < self.info.frame_bytes:
                raise InputError(f"{self.name}: input ends inside frame {index}")
            index += 1
        produced = 0
        while self._limit is None or produced < self._limit:
            payload = self._next_payload(index)
            if payload is None:
                return
            yield frame_from_bytes(payload, self.info.width, self.info.height, self.info.bitdepth)
            produced += 1
            index += 1

    def close(self) -> None:
        self._stream.close()


def write_y4m_header(out: ByteSink, info: VideoInfo) -> None:
    out.write(format_header(info))


def write_y4m_frame(out: ByteSink, frame: Frame) -> None:
    out.write(b"FRAME\n")
    out.write(frame_to_bytes(frame))
