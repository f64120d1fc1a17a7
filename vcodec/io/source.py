"""The interface every input reader offers: a description of the sequence, then frames one at a time."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import replace
from types import TracebackType

from vcodec.io.formats import VideoInfo
from vcodec.types import Frame


class VideoSource(ABC):
    """Frames are read lazily, in order, from the first frame selected (`start`) on.

    `info.frame_count` is the number of frames the iteration will give when the reader can know it
    in advance (a file), None otherwise (a pipe or a container without a frame count).
    """

    info: VideoInfo
    name: str
    _start: int
    _limit: int | None

    def skip_frames(self, count: int) -> None:
        """Move the selection `count` frames on before iterating (to resume an interrupted encode)."""
        self._start += count
        if self._limit is not None:
            self._limit = max(self._limit - count, 0)
        remaining = None if self.info.frame_count is None else max(self.info.frame_count - count, 0)
        self.info = replace(self.info, frame_count=remaining)

    @abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Yield the selected frames in order; can be called once."""

    def close(self) -> None:  # noqa: B027 - readers without resources keep the default
        """Release the underlying file."""

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def selected_count(available: int | None, start: int, limit: int | None) -> int | None:
    """How many frames a `start`/`limit` selection yields out of `available` (None: unknown)."""
    if available is None:
        return limit
    remaining = max(available - start, 0)
    return remaining if limit is None else min(remaining, limit)
