"""`vcodec decode`: decode a range of a container's frames to planar YUV or y4m, or a picture's to PNG.

A damaged container still gives what it can: the intact frames of the range are written and the
damage is named (DamagedStreamError), unless `--strict` asks for all or nothing. The decoder, and so
torch, is imported only when a frame is decoded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vcodec.bitstream.salvage import DamagedFrame, SalvageReader
from vcodec.io import OptionError, VideoInfo, open_video_writer, video_format_of
from vcodec.io.output import PICTURE_FORMAT
from vcodec.types import BitstreamError, Frame


def parse_frame_range(text: str | None, count: int) -> range:
    """`N` (the first N frames), `A:B` (frames A to B-1), `A:` or `:B`, within the `count` frames.

    A range that selects nothing or reaches past the last frame is refused, not clipped: a user who
    asked for frames that do not exist should be told, not given fewer.
    """
    if text is None or text.strip() in ("", ":"):
        return range(count)
    try:
        if ":" in text:
            first_text, last_text = text.split(":", 1)
            first = int(first_text) if first_text.strip() else 0
            stop = int(last_text) if last_text.strip() else count
        else:
            first, stop = 0, int(text)
    except ValueError:
        raise OptionError(f"invalid frame range {text!r}: expected N, A:B, A: or :B") from None
    if first < 0 or stop < first:
        raise OptionError(f"invalid frame range {text!r}")
    if first >= count:
        raise OptionError(f"frame range {text!r} starts after the last frame (the stream has {count} frames)")
    if stop == first:
        raise OptionError(f"frame range {text!r} is empty: nothing to decode")
    if stop > count:
        raise OptionError(f"frame range {text!r} ends after the last frame (the stream has {count} frames)")
    return range(first, stop)


@dataclass(frozen=True)
class DecodeSummary:
    """What a decode wrote, and what of the range it could not (the CLI reports both)."""

    frames: int  # frames written
    seconds: float
    info: VideoInfo
    damaged: dict[int, str] = field(default_factory=dict)  # frames of the range not written: why
    problems: tuple[str, ...] = ()  # what is wrong with the container's structure


class DamagedStreamError(BitstreamError):
    """The container is damaged. Without --strict, the intact frames were written (`summary` says which)."""

    def __init__(self, message: str, summary: DecodeSummary | None = None) -> None:
        super().__init__(message)
        self.summary = summary


def _damage_text(damaged: dict[int, str]) -> str:
    """'frame 2 is damaged (CRC mismatch)', 'frames 1, 3 are damaged (1: missing; 3: CRC mismatch)'."""
    numbers = sorted(damaged)
    if len(numbers) == 1:
        return f"frame {numbers[0]} is damaged ({damaged[numbers[0]]})"
    reasons = set(damaged.values())
    why = reasons.pop() if len(reasons) == 1 else "; ".join(f"{n}: {damaged[n]}" for n in numbers)
    return f"frames {', '.join(map(str, numbers))} are damaged ({why})"


def _damage_message(name: str, problems: tuple[str, ...], damaged: dict[int, str]) -> str:
    parts = []
    if problems:
        parts.append(f"the container is damaged ({'; '.join(problems)})")
    if damaged:
        parts.append(_damage_text(damaged))
    return f"{name}: {', and '.join(parts)}"


def _decode_checked(reader: SalvageReader, number: int) -> Frame:
    """Frame `number`, decoded; DamagedFrame if it cannot be read or decodes to another size."""
    from vcodec.decoder import decode_frame

    data = reader.read_frame(number)
    try:
        frame = decode_frame(data)
    except BitstreamError as error:
        raise DamagedFrame(reader.name, number, f"its bitstream does not decode: {error}") from None
    header = reader.header
    if (frame.width, frame.height, frame.bitdepth) != (header.width, header.height, header.bitdepth):
        raise DamagedFrame(reader.name, number, f"it decodes to {frame.width}x{frame.height} "
                           f"{frame.bitdepth}-bit, the sequence header says {header.width}x{header.height} "
                           f"{header.bitdepth}-bit")
    return frame


def decode_sequence(
    reader: SalvageReader,
    output: str,
    frames: range,
    *,
    fmt: str | None = None,
    overwrite: bool = False,
    strict: bool = False,
    on_frame: Callable[[int], None] | None = None,
) -> DecodeSummary:
    """Decode `frames` of a container to planar YUV or y4m, or one frame to a PNG picture by the RGB
    conversion the container records (`output` may be `-` for stdout).

    A damaged container still gives every intact frame of the range: damaged ones are skipped (the
    output holds the intact frames, in order), the output is finished, and DamagedStreamError names the
    damage. With `strict`, a damaged container writes nothing: its structure and the CRC of every frame
    of the range are checked before the output is opened (a frame that passes its CRC but does not
    decode can still stop a decode to stdout part way).
    """
    if not reader.frame_count:
        raise BitstreamError(f"{reader.name} holds no complete frame: nothing to decode")
    if not frames:
        raise OptionError("the frame range is empty: nothing to decode")
    problems = tuple(reader.problems)
    if video_format_of(output, fmt, pictures=True) == PICTURE_FORMAT:
        return _decode_picture(reader, output, frames, overwrite, strict)
    if strict:
        damaged = {}
        for number in frames:
            try:
                reader.read_frame(number)
            except DamagedFrame as error:
                damaged[number] = error.reason
        if problems or damaged:
            message = _damage_message(reader.name, problems, damaged)
            raise DamagedStreamError(f"{message}; nothing was written (--strict)")
    header = reader.header
    damaged = {}
    decode_seconds = 0.0
    info = VideoInfo(header.width, header.height, header.bitdepth, header.fps, len(frames))
    with open_video_writer(output, info, fmt, overwrite) as video:
        for number in frames:
            began = time.perf_counter()
            try:
                frame = _decode_checked(reader, number)
            except DamagedFrame as error:
                if strict:
                    raise DamagedStreamError(f"{error}; nothing was written (--strict)") from None
                damaged[number] = error.reason
                continue
            finally:
                decode_seconds += time.perf_counter() - began
            video.write(frame)
            if on_frame is not None:
                on_frame(number)
        written = len(frames) - len(damaged)
        if not written:  # (raised inside: nothing is left behind under the output's name)
            raise DamagedStreamError(f"{_damage_message(reader.name, problems, damaged)}: no intact frame to decode")
    summary = DecodeSummary(written, decode_seconds, info, damaged, problems)
    if damaged or problems:
        kept = (f"{output} holds the {written} intact frames of {len(frames)}" if damaged
                else f"all {written} frames are intact and were written to {output}")
        skipped = " and skipped" if damaged else ""
        raise DamagedStreamError(f"{_damage_message(reader.name, problems, damaged)}{skipped}: {kept}", summary)
    return summary


def _decode_picture(reader: SalvageReader, output: str, frames: range, overwrite: bool, strict: bool) -> DecodeSummary:
    """One frame of a file coded from an RGB picture, written as a PNG by the conversion the file records.
    Nothing is written when the frame is damaged (there is nothing else to give), nor with `strict` when
    anything else in the file is."""
    from vcodec.io.picture import write_picture

    picture = reader.header.picture
    if picture is None:
        raise OptionError(f"{reader.name} holds YUV video, not a picture coded from RGB: it records no RGB "
                          "conversion to undo; decode it to .yuv or .y4m")
    if len(frames) != 1:
        raise OptionError(f"a PNG holds one picture and the range selects {len(frames)} frames of {reader.name}: "
                          "select one (--frames A:A+1) or decode to .yuv or .y4m")
    if strict and reader.problems:
        message = _damage_message(reader.name, tuple(reader.problems), {})
        raise DamagedStreamError(f"{message}; nothing was written (--strict)")
    began = time.perf_counter()
    try:
        frame = _decode_checked(reader, frames[0])
    except DamagedFrame as error:
        raise DamagedStreamError(f"{error}: nothing was written") from None
    seconds = time.perf_counter() - began
    write_picture(output, frame, picture, overwrite)
    header = reader.header
    summary = DecodeSummary(1, seconds, VideoInfo(header.width, header.height, header.bitdepth, header.fps, 1,
                                                  picture), {}, tuple(reader.problems))
    if reader.problems:
        raise DamagedStreamError(f"{_damage_message(reader.name, summary.problems, {})}: the frame is intact and "
                                 f"was written to {output}", summary)
    return summary
