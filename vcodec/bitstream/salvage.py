"""Reading what survives of a damaged container: every intact frame, and what is wrong with the rest.

`ContainerReader` refuses a file whose structure does not check out (a finished file cut short, bytes
after its end, a record whose header is damaged), because `info` and `--resume` rely on a sound file.
A decoder should rather give the user every frame that survived, as a damaged DVD still plays:
`SalvageReader` reads the index when it is sound and otherwise walks the records, stepping over
damaged bytes to the next record whose header and CRC check out. It records what it found wrong
(`problems`), reports the frames the file should hold (`frame_count`: the header's count once the
file is finished), and `read_frame` raises `DamagedFrame` for a frame that is missing or fails its
CRC. The layout it reads is that of `vcodec.bitstream.container` (docs/container.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

from vcodec.bitstream.container import (
    FOOTER_BYTES,
    FOOTER_MAGIC,
    FRAME_MARKER,
    INDEX_MARKER,
    MAX_RECORD_HEADER_BYTES,
    MIN_FRAME_BYTES,
    MIN_RECORD_BYTES,
    FileReader,
    IndexEntry,
    RecordCutShort,
    SequenceHeader,
    check_payload,
    parse_footer,
    parse_index,
    parse_record_header,
    read_file_header,
)
from vcodec.types import BitstreamError

_SEARCH_CHUNK = 1 << 20
_NO_END = 1 << 62  # a file size that no record runs past: lets parse_record_header check the rest
# The resync checks the CRC of every candidate record it meets; a hostile file of markers whose lengths
# all reach its end would make that quadratic. The bytes it may check: a few times the file, then it
# gives up on the rest (noted as a problem).
_RESYNC_CHECK_FACTOR = 4
_RESYNC_CHECK_FLOOR = 64 << 20


class DamagedFrame(BitstreamError):
    """One frame of a container cannot be read: `reason` says why in a few words."""

    def __init__(self, name: str, number: int, reason: str) -> None:
        super().__init__(f"{name}: frame {number} is damaged ({reason})")
        self.number = number
        self.reason = reason


class SalvageReader(FileReader):
    """The frames of a container, however damaged, as far as they can be found and checked.

    `finished`: the header holds a frame count (the encode completed). `frame_count`: that count, or
    for an unfinished file the frames up to the last one found. `problems`: what is wrong with the
    file's structure, one phrase each (empty for a sound file; a last record cut short by an
    interrupted encode is not a problem, it is `trailing_bytes`). The file header itself must be sound:
    without it nothing can be decoded, and BitstreamError is raised.
    """

    def _open(self) -> None:
        self.file_size = self._handle.seek(0, os.SEEK_END)
        self.header: SequenceHeader
        self.version, self.header, self.first_record = read_file_header(self._handle)
        self._head_bytes = MAX_RECORD_HEADER_BYTES[self.version]
        self.finished = self.header.frame_count > 0
        self.problems: list[str] = []
        self.trailing_bytes = 0
        self._check_budget = _RESYNC_CHECK_FACTOR * self.file_size + _RESYNC_CHECK_FLOOR
        self._footers: dict[int, list[int]] | None = None
        entries = self._indexed_entries()
        if entries is None:
            entries = self._walk()
        self._entries = {entry.number: entry for entry in entries}
        # Each frame of a finished file takes a record (and, in version 1, an index entry) at least: a count
        # the file cannot hold is a damaged header (and would make `missing` as long as the count).
        capacity = max(0, self.file_size - self.first_record) // MIN_FRAME_BYTES[self.version]
        if self.finished and self.header.frame_count > capacity:
            self.problems.append(f"the header announces {self.header.frame_count} frames, more than its "
                                 f"{self.file_size} bytes can hold")
            self.frame_count = max(self._entries, default=-1) + 1
        elif self.finished:
            self.frame_count = self.header.frame_count
            beyond = [n for n in self._entries if n >= self.frame_count]
            if beyond:
                self.problems.append(f"records of frames past the {self.frame_count} the header announces")
        else:
            self.frame_count = max(self._entries, default=-1) + 1
        self.missing = tuple(n for n in range(self.frame_count) if n not in self._entries)

    @property
    def complete(self) -> bool:
        """Finished and sound: every announced frame was found and nothing else is wrong."""
        return self.finished and not self.problems and not self.missing

    def read_frame(self, number: int) -> bytes:
        """The CRC-checked bitstream of frame `number`; DamagedFrame when it is missing or damaged."""
        if not 0 <= number < self.frame_count:
            raise BitstreamError(f"{self.name}: frame {number} is not in the container ({self.frame_count} frames)")
        entry = self._entries.get(number)
        if entry is None:
            raise DamagedFrame(self.name, number, "missing")
        try:
            record = parse_record_header(self._read(entry.offset, self._head_bytes), entry.offset, self.file_size,
                                         self.version)
        except BitstreamError:
            record = None
        if record is None or (record.number, record.length, record.size) != (number, entry.length, entry.head):
            raise DamagedFrame(self.name, number, "bad record header")  # (or the index and the record disagree)
        try:
            return check_payload(record, self._read(entry.payload_offset, record.length))
        except BitstreamError:
            raise DamagedFrame(self.name, number, "CRC mismatch") from None

    # --- finding the records ---------------------------------------------------------------------

    def _read(self, offset: int, size: int) -> bytes:
        self._handle.seek(offset)
        return self._handle.read(size)

    def _indexed_entries(self) -> list[IndexEntry] | None:
        """The entries of a sound index at the end of the file; None (a problem noted if it was meant
        to be there) otherwise."""
        if self.file_size < self.first_record + FOOTER_BYTES:
            return None
        index_offset = parse_footer(self._read(self.file_size - FOOTER_BYTES, FOOTER_BYTES))
        if index_offset is None:
            return None  # no footer: unfinished, or cut short, or followed by other bytes (the walk tells)
        if not self.first_record <= index_offset <= self.file_size - FOOTER_BYTES:
            self.problems.append("its index is damaged")
            return None
        try:
            entries = parse_index(self._read(index_offset, self.file_size - FOOTER_BYTES - index_offset),
                                  self.first_record, index_offset, self.version)
        except BitstreamError:
            self.problems.append("its index is damaged")
            return None
        if self.finished and len(entries) != self.header.frame_count:
            self.problems.append(f"its index lists {len(entries)} frames, the header {self.header.frame_count}")
        return entries

    def _walk(self) -> list[IndexEntry]:
        """Records from the first, in order; damaged stretches are stepped over to the next sound record."""
        entries: list[IndexEntry] = []
        offset = self.first_record
        while offset < self.file_size:
            expected = entries[-1].number + 1 if entries else 0
            head = self._read(offset, self._head_bytes)
            if head[:4] == INDEX_MARKER:
                end = self._index_end(offset)
                if end is not None:
                    if end < self.file_size:
                        self.problems.append(f"{self.file_size - end} unexpected bytes follow its end")
                    return entries
            record = self._record_at(offset, head, expected)
            if record is not None:
                entries.append(record)
                offset = record.end
                continue
            # No record here. A damaged length in the record before may be what led here: if that record
            # fails its CRC, look for the next sound record from just after its start.
            search_from = offset + 1
            if entries and not self._crc_ok(entries[-1]):
                search_from = entries[-1].offset + 1
            found = self._next_sound_record(search_from, expected)
            if found is None:
                self._note_tail(offset, head, expected)
                return entries
            self.problems.append(f"bytes {min(search_from - 1, offset)}..{found} are damaged")
            record = self._record_at(found, self._read(found, self._head_bytes), expected, resync=True)
            if record is not None:  # (else an index starts there)
                entries.append(record)
                found = record.end
            offset = found
        if self.finished and len(entries) < self.header.frame_count:
            self.problems.append("the file is cut short")
        return entries

    def _crc_ok(self, entry: IndexEntry) -> bool:
        head = self._read(entry.offset, self._head_bytes)
        try:
            record = parse_record_header(head, entry.offset, self.file_size, self.version)
            check_payload(record, self._read(entry.payload_offset, record.length))
        except BitstreamError:
            return False
        return True

    def _record_at(self, offset: int, head: bytes, expected: int, resync: bool = False) -> IndexEntry | None:
        """The record at `offset` if its header is sound, fits the file and holds the expected frame. After
        damage (`resync`), any later frame will do, but only if its payload passes its CRC and the bytes
        before it can hold the records of the frames before it (else a record numbered 2^32 - 2 would make
        an unfinished file one of 2^32 - 1 frames, nearly all `missing`)."""
        if head[:4] != FRAME_MARKER:
            return None
        try:
            record = parse_record_header(head, offset, _NO_END, self.version)
        except BitstreamError:  # (RecordCutShort too: a header the end of the file cuts)
            return None
        number, length = record.number, record.length
        entry = IndexEntry(number, offset, length, record.size)
        if entry.end > self.file_size or (self.finished and number >= self.header.frame_count):
            return None
        if number > (offset - self.first_record) // MIN_RECORD_BYTES[self.version]:
            return None
        if not resync:
            return entry if number == expected else None
        if number < expected:
            return None
        if length > self._check_budget:
            self._check_budget = -1  # spent: no further record is checked
            return None
        self._check_budget -= length
        try:
            check_payload(record, self._read(entry.payload_offset, length))
        except BitstreamError:
            return None
        return entry

    def _next_sound_record(self, start: int, expected: int) -> int | None:
        """Where the next record whose CRC checks out (or a sound index) starts, searching from `start`."""
        for candidate in self._occurrences((FRAME_MARKER, INDEX_MARKER), start):
            if self._check_budget < 0:
                self.problems.append(f"the search for intact records gave up at byte {candidate}")
                return None
            head = self._read(candidate, self._head_bytes)
            if head[:4] == INDEX_MARKER:
                if self._index_end(candidate) is not None:
                    return candidate
            elif self._record_at(candidate, head, expected, resync=True) is not None:
                return candidate
        return None

    def _index_end(self, offset: int) -> int | None:
        """Where a sound index starting at `offset` ends with its footer (bytes may follow it), or None."""
        footer = next((at for at in self._footer_positions().get(offset, []) if at > offset), None)
        if footer is None:
            return None
        try:
            parse_index(self._read(offset, footer - offset), self.first_record, offset, self.version)
        except BitstreamError:
            return None
        return footer + FOOTER_BYTES

    def _footer_positions(self) -> dict[int, list[int]]:
        """Every footer in the file, by the index offset it names (found in one pass, on first need, so
        that many index markers cost one search, not one each)."""
        if self._footers is None:
            self._footers = {}
            for magic_at in self._occurrences((FOOTER_MAGIC,), 0):
                footer = magic_at - (FOOTER_BYTES - len(FOOTER_MAGIC))
                if footer >= 0:
                    named = parse_footer(self._read(footer, FOOTER_BYTES))
                    if named is not None:
                        self._footers.setdefault(named, []).append(footer)
        return self._footers

    def _note_tail(self, offset: int, head: bytes, expected: int) -> None:
        """No sound record from `offset` on: a record an interrupted encode cut short, or damage."""
        try:
            parse_record_header(head, offset, self.file_size, self.version)
            cut_short = False
        except RecordCutShort as cut:  # a header cut, or the next frame running past the end of the file
            cut_short = cut.number is None or cut.number == expected
        except BitstreamError:
            cut_short = False
        if cut_short and not self.finished:
            self.trailing_bytes = self.file_size - offset
        elif cut_short:
            self.problems.append("the file is cut short")
        else:
            self.problems.append(f"its last {self.file_size - offset} bytes are not frame records")

    def _occurrences(self, markers: tuple[bytes, ...], start: int) -> Iterator[int]:
        """Every position at or after `start` where one of `markers` begins, in order; the file is read
        once, chunk by chunk, however many there are."""
        pattern = re.compile(b"(?=" + b"|".join(re.escape(marker) for marker in markers) + b")")
        overlap = max(len(marker) for marker in markers) - 1
        position = start
        while position < self.file_size:
            chunk = self._read(position, _SEARCH_CHUNK + overlap)
            for match in pattern.finditer(chunk, 0, _SEARCH_CHUNK + overlap):
                if match.start() >= _SEARCH_CHUNK:
                    break  # (found again, whole, in the next chunk)
                yield position + match.start()
            position += _SEARCH_CHUNK
