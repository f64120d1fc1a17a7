"""A byte stream that reads exact amounts and skips forward, over a seekable file or a pipe."""

from __future__ import annotations

import io
from typing import BinaryIO

from vcodec.io.errors import InputError

_SKIP_CHUNK = 1 << 20


class ByteStream:
    """Wraps a binary file object; bytes peeked at the start are served again before the rest."""

    def __init__(self, raw: BinaryIO, name: str) -> None:
        self._raw = raw
        self.name = name
        self._pending = b""
        try:
            self.seekable = raw.seekable()
        except (AttributeError, ValueError, OSError):
            self.seekable = False

    def peek(self, count: int) -> bytes:
        """Up to `count` bytes from the current position, left in place for the next read."""
        while len(self._pending) < count:
            chunk = self._raw.read(count - len(self._pending))
            if not chunk:
                break
            self._pending += chunk
        return self._pending[:count]

    def read(self, count: int) -> bytes:
        """Up to `count` bytes; fewer only at the end of the stream."""
        out = bytearray()
        if self._pending:
            out += self._pending[:count]
            self._pending = self._pending[count:]
        while len(out) < count:
            chunk = self._raw.read(count - len(out))
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def read_exact(self, count: int, what: str) -> bytes | None:
        """Exactly `count` bytes, None at a clean end of stream, InputError if it ends part-way."""
        data = self.read(count)
        if not data:
            return None
        if len(data) != count:
            raise InputError(f"{self.name}: input ends inside {what} ({len(data)} of {count} bytes)")
        return data

    def readline(self, limit: int, what: str) -> bytes | None:
        """A line up to and including its newline; None at a clean end of stream."""
        line = bytearray()
        while len(line) <= limit:
            byte = self.read(1)
            if not byte:
                if not line:
                    return None
                raise InputError(f"{self.name}: input ends inside {what}")
            line += byte
            if byte == b"\n":
                return bytes(line)
        raise InputError(f"{self.name}: {what} is longer than {limit} bytes")

    def skip(self, count: int) -> int:
        """Move forward `count` bytes (seeking when possible); returns how many were skipped."""
        if self.seekable and not self._pending:
            here = self._raw.tell()
            end = self._raw.seek(0, io.SEEK_END)
            target = min(here + count, end)
            self._raw.seek(target)
            return target - here
        skipped = 0
        while skipped < count:
            chunk = self.read(min(_SKIP_CHUNK, count - skipped))
            if not chunk:
                break
            skipped += len(chunk)
        return skipped

    def close(self) -> None:
        self._raw.close()
