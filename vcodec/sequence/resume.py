"""Opening the container an encode writes, which is where `--resume` is decided.

An encode appends each finished frame to `<output>.partial` and renames it over the output only when
the sequence is complete. A new encode refuses to replace either without -y; `--resume` continues a
partial file after its last complete frame, but only when it is the same encode: same input format,
same settings (RESUME_KEYS) and the same first frame (vcodec.sequence.settings.source_digest).
An unfinished file always holds those settings; a finished one only when it was written with
`--settings`, and `--resume` cannot call one without them complete: it cannot tell how it was made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vcodec.bitstream.container import ContainerReader, ContainerWriter, SequenceHeader
from vcodec.io import OutputExistsError, VideoInfo, check_overwrite, partial_path
from vcodec.sequence.reports import EncodeSummary
from vcodec.sequence.settings import SOURCE_DIGEST_KEY
from vcodec.sequence.errors import ResumeError

# Settings recorded in the container that must match for `--resume` to continue a file.
RESUME_KEYS: tuple[str, ...] = ("arch", "preset", "lmbda", "target", "iterations", "seed", "loss", "start",
                                "warm_start", "warm_chain", "warm_fraction")
# Keys that files written before they existed lack: compared only where the file has them.
LATER_KEYS: frozenset[str] = frozenset({"warm_start", "warm_chain", "warm_fraction"})


def header_for(info: VideoInfo, record: dict[str, Any]) -> SequenceHeader:
    return SequenceHeader(info.width, info.height, info.bitdepth, info.fps, settings=record, picture=info.picture)


def check_compatible(header: SequenceHeader, wanted: SequenceHeader, path: Path) -> None:
    """An interrupted encode is continued only with the same input format and the same settings."""
    mine = (header.width, header.height, header.bitdepth, header.fps)
    theirs = (wanted.width, wanted.height, wanted.bitdepth, wanted.fps)
    if mine != theirs:
        raise ResumeError(
            f"cannot resume {path}: it holds {header.width}x{header.height} {header.bitdepth}-bit {header.fps} fps, "
            f"the input is {wanted.width}x{wanted.height} {wanted.bitdepth}-bit {wanted.fps} fps"
        )
    if header.picture != wanted.picture:
        raise ResumeError(f"cannot resume {path}: it holds {_picture_text(header)}, the input is {_picture_text(wanted)}")
    if not header.settings:
        raise ResumeError(
            f"cannot resume {path}: it holds no encoder settings (it was written without --settings), so "
            f"whether it was coded with these cannot be checked; use -y to code it again"
        )
    for key in RESUME_KEYS:
        if key in LATER_KEYS and key not in header.settings:
            continue
        if header.settings.get(key) != wanted.settings.get(key):
            raise ResumeError(
                f"cannot resume {path}: it was coded with {key}={header.settings.get(key)!r}, "
                f"this run asks for {key}={wanted.settings.get(key)!r}"
            )
    coded, given = header.settings.get(SOURCE_DIGEST_KEY), wanted.settings.get(SOURCE_DIGEST_KEY)
    if coded is not None and coded != given:  # (files written before the digest was stored have none)
        raise ResumeError(
            f"cannot resume {path}: it was coded from another input (first frame sha256 {str(coded)[:16]}..., "
            f"this input's {str(given)[:16]}...)"
        )


def _picture_text(header: SequenceHeader) -> str:
    picture = header.picture
    if picture is None:
        return "YUV video"
    return f"a {picture.width}x{picture.height} RGB picture converted with {picture.conversion}"


def open_output(
    target: Path, header: SequenceHeader, overwrite: bool, resume: bool, expected_frames: int | None
) -> ContainerWriter | EncodeSummary:
    """The writer to append to, or a summary when `--resume` finds the output already complete."""
    partial = partial_path(target)
    if resume and partial.exists():
        writer = ContainerWriter.append_to(partial)
        try:
            check_compatible(writer.header, header, partial)
        except BaseException:
            writer.close()
            raise
        return writer
    if resume and target.exists() and not overwrite:
        with ContainerReader(target) as reader:
            check_compatible(reader.header, header, target)
            if expected_frames is not None and reader.frame_count == expected_frames:
                info = VideoInfo(header.width, header.height, header.bitdepth, header.fps, reader.frame_count)
                size = sum(entry.length for entry in reader.entries)
                return EncodeSummary(target, info, reader.frame_count, size, reader.frame_count, already_complete=True)
        raise OutputExistsError(f"{target} already exists with {reader.frame_count} frames (use -y to overwrite)")
    refuse_existing(target, overwrite)
    return ContainerWriter.create(partial, header)


def refuse_existing(target: Path, overwrite: bool) -> None:
    """Without -y, neither the container nor an interrupted encode of it (`.partial`) is replaced."""
    check_overwrite(target, overwrite)
    partial = partial_path(target)
    if partial.exists() and not overwrite:
        raise OutputExistsError(
            f"{partial} holds an interrupted encode: add --resume to continue it, or -y to start over"
        )
