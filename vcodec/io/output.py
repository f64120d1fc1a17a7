"""Writing outputs safely: nothing is overwritten without consent, a finished file appears at once.

A file is written as `<target>.partial`, synced, then renamed over the target, so a reader never
sees half a file under the final name and an interrupted run leaves the old target untouched.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from vcodec.io.errors import OptionError, OutputExistsError
from vcodec.io.formats import RAW_SUFFIXES, ByteSink, VideoInfo
from vcodec.io.raw import write_raw_frame
from vcodec.io.y4m import write_y4m_frame, write_y4m_header
from vcodec.types import Frame

STDIO = "-"
PARTIAL_SUFFIX = ".partial"


def partial_path(target: Path) -> Path:
    return target.with_name(target.name + PARTIAL_SUFFIX)


def check_overwrite(target: Path, overwrite: bool) -> None:
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{target} already exists (use -y to overwrite)")


def fsync_directory(directory: Path) -> None:
    """Make a rename durable; some file systems refuse to open directories, which is harmless here."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit_partial(partial: Path, target: Path) -> None:
    """Rename a finished, synced partial file over its target."""
    os.replace(partial, target)
    fsync_directory(target.parent.resolve())


@contextmanager
def atomic_output(target: Path, overwrite: bool) -> Iterator[BinaryIO]:
    """A binary file that becomes `target` only if the block completes without an exception."""
    check_overwrite(target, overwrite)
    partial = partial_path(target)
    handle = open(partial, "wb")
    try:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        commit_partial(partial, target)
    except BaseException:
        handle.close()
        partial.unlink(missing_ok=True)
        raise


VIDEO_FORMATS: tuple[str, ...] = ("raw", "y4m")
PICTURE_FORMAT = "png"  # `vcodec decode` also writes a picture coded from one (vcodec.io.picture)


def video_format_of(path: str, requested: str | None = None, pictures: bool = False) -> str:
    """`raw` or `y4m`, as ffmpeg chooses a muxer: the suffix says (`.yuv`, `.y4m`), stdout is raw; with
    `pictures`, also `png` (`.png`).

    `requested` (`--format`) wins for stdout and for a name without a known suffix; it may not
    contradict a known suffix. A name the suffix cannot place is refused rather than filled with raw
    samples that a player would take for the format its name promises (`out.mp4`).
    """
    formats = VIDEO_FORMATS + ((PICTURE_FORMAT,) if pictures else ())
    if requested is not None and requested not in formats:
        raise OptionError(f"--format {requested}: expected {', '.join(formats[:-1])} or {formats[-1]}")
    if path == STDIO:
        return requested or "raw"
    suffix = Path(path).suffix.lower()
    by_suffix = "y4m" if suffix == ".y4m" else "raw" if suffix in RAW_SUFFIXES else None
    if pictures and suffix == f".{PICTURE_FORMAT}":
        by_suffix = PICTURE_FORMAT
    if by_suffix is None:
        if requested is not None:
            return requested
        raise OptionError(
            f"{path}: cannot tell the output format from its suffix {suffix or '(none)'!r}: "
            f"vcodec writes raw YUV (.yuv){', y4m (.y4m) or a PNG picture (.png)' if pictures else ' or y4m (.y4m)'}"
        )
    if requested is not None and requested != by_suffix:
        raise OptionError(f"--format {requested} contradicts the suffix of {path} ({suffix} is {by_suffix})")
    return by_suffix


class _UnbufferedStdout:
    """Writes straight to the stdout file descriptor, retrying short writes until all is written.

    Through Python's buffered stdout, a write that a departing reader cuts short leaves its tail in
    the buffer and, when that tail fits the buffer, no error is ever raised (CPython 3.11): the decode
    would end with exit 0 having written part of a frame. Here the retry meets the broken pipe.
    """

    def __init__(self) -> None:
        sys.stdout.flush()
        self._fd = sys.stdout.fileno()

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        return len(data)


class VideoWriter:
    """Writes frames as raw planar YUV or y4m, to a file (atomically) or to stdout."""

    def __init__(self, out: ByteSink, info: VideoInfo, fmt: str) -> None:
        self._out = out
        self._fmt = fmt
        if fmt == "y4m":
            write_y4m_header(out, info)

    def write(self, frame: Frame) -> None:
        if self._fmt == "y4m":
            write_y4m_frame(self._out, frame)
        else:
            write_raw_frame(self._out, frame)


@contextmanager
def open_video_writer(
    path: str, info: VideoInfo, fmt: str | None = None, overwrite: bool = False
) -> Iterator[VideoWriter]:
    """`path` may be `-` for stdout; the format is chosen by `video_format_of`, before anything is written."""
    kind = video_format_of(path, fmt)
    if path == STDIO:
        yield VideoWriter(_UnbufferedStdout(), info, kind)
        return
    with atomic_output(Path(path), overwrite) as handle:
        yield VideoWriter(handle, info, kind)
