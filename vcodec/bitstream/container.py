"""The `.vcc` container: one sequence of independently coded intra frames, with random access.

Byte layout (all integers big-endian; the full table is in docs/container.md):

    file header      magic (8) | format version u16 | header length u32 | sequence header | CRC-32
    frame record     "VCFR" | frame number u32 | payload length u32 | CRC-32 | frame bitstream
    ...              one record per frame, in frame order
    index            "VCIX" | count u32 | count x (record offset u64, payload length u32) | CRC-32
    footer           index offset u64 | "VCCINDEX"

Records are self-delimiting and are appended and flushed one at a time, so a file cut short at any
byte still holds every frame completed before the cut. The sequence header's frame count is 0 until
the writer finishes; the index and footer are then appended. A reader uses the index when it is
valid and otherwise walks the records, so the index only saves time, never holds information the
records lack.

Parsing is done by pure functions over bytes; every length is checked against the bytes that remain
before anything is allocated, and every failure raises `BitstreamError` with a message.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Self

from vcodec.format import check_frame_size
from vcodec.types import SUPPORTED_BITDEPTHS, BitstreamError

MAGIC = b"\x89VCC\r\n\x1a\n"
FORMAT_VERSION = 1
FRAME_MARKER = b"VCFR"
INDEX_MARKER = b"VCIX"
FOOTER_MAGIC = b"VCCINDEX"

# Stored as an index into this tuple: append new formats, never reorder.
CHROMA_FORMATS: tuple[str, ...] = ("420",)

MAX_SETTINGS_BYTES = 65535
MAX_FRAME_BYTES = 1 << 30
MAX_FRAMES = (1 << 32) - 1

_PREAMBLE = struct.Struct(">8sHI")  # magic, format version, sequence header length
_SEQUENCE_FIXED = struct.Struct(">HHBBIIIH")  # w, h, bit depth, chroma, fps num, fps den, frames, settings length
_RECORD = struct.Struct(">4sIII")  # marker, frame number, payload length, CRC-32
_INDEX_HEAD = struct.Struct(">4sI")  # marker, count
_INDEX_ENTRY = struct.Struct(">QI")  # record offset, payload length
_CRC = struct.Struct(">I")
_FOOTER = struct.Struct(">Q8s")  # index offset, footer magic

RECORD_HEADER_BYTES = _RECORD.size
INDEX_ENTRY_BYTES = _INDEX_ENTRY.size
FOOTER_BYTES = _FOOTER.size


@dataclass(frozen=True)
class SequenceHeader:
    """What is common to all frames; `frame_count` is 0 while the file is being written."""

    width: int
    height: int
    bitdepth: int
    fps: Fraction
    frame_count: int = 0
    chroma_format: str = "420"
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The fields are 16-bit, but a sequence holds only sizes its frames can have (vcodec.format).
        check_frame_size(self.width, self.height, BitstreamError, "sequence header")
        if self.bitdepth not in SUPPORTED_BITDEPTHS:
            raise BitstreamError(f"sequence bit depth {self.bitdepth} is not supported")
        if self.chroma_format not in CHROMA_FORMATS:
            raise BitstreamError(f"chroma format {self.chroma_format!r} is not supported")
        if self.fps <= 0 or self.fps.numerator > MAX_FRAMES or self.fps.denominator > MAX_FRAMES:
            raise BitstreamError(f"frame rate {self.fps} is out of range")
        if not 0 <= self.frame_count <= MAX_FRAMES:
            raise BitstreamError(f"frame count {self.frame_count} is out of range")


@dataclass(frozen=True)
class IndexEntry:
    """Where frame `number`'s record starts and how long its payload is."""

    number: int
    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + RECORD_HEADER_BYTES + self.length


def _crc(*parts: bytes) -> int:
    value = 0
    for part in parts:
        value = zlib.crc32(part, value)
    return value


def pack_file_header(header: SequenceHeader) -> bytes:
    settings = json.dumps(header.settings, sort_keys=True, separators=(",", ":")).encode("utf-8")
    if len(settings) > MAX_SETTINGS_BYTES:
        raise BitstreamError(f"encoder settings take {len(settings)} bytes (at most {MAX_SETTINGS_BYTES})")
    body = _SEQUENCE_FIXED.pack(
        header.width,
        header.height,
        header.bitdepth,
        CHROMA_FORMATS.index(header.chroma_format),
        header.fps.numerator,
        header.fps.denominator,
        header.frame_count,
        len(settings),
    ) + settings
    preamble = _PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(body))
    return preamble + body + _CRC.pack(_crc(preamble[len(MAGIC) :], body))


def file_header_size(data: bytes) -> int:
    """Bytes the file header takes, from its first 14 bytes (validated)."""
    if len(data) < _PREAMBLE.size:
        raise BitstreamError(f"file is too short for a vcodec container ({len(data)} bytes)")
    magic, version, length = _PREAMBLE.unpack_from(data)
    if magic != MAGIC:
        raise BitstreamError("not a vcodec container (bad magic number)")
    if version != FORMAT_VERSION:
        raise BitstreamError(
            f"container format version {version} is not supported (this vcodec reads {FORMAT_VERSION})"
        )
    if not _SEQUENCE_FIXED.size <= length <= _SEQUENCE_FIXED.size + MAX_SETTINGS_BYTES:
        raise BitstreamError(f"sequence header length {length} is out of range")
    return _PREAMBLE.size + length + _CRC.size


def parse_file_header(data: bytes) -> SequenceHeader:
    """Parse exactly the bytes `file_header_size` announced."""
    size = file_header_size(data)
    if len(data) < size:
        raise BitstreamError(f"file is truncated inside its sequence header ({len(data)} of {size} bytes)")
    body = data[_PREAMBLE.size : size - _CRC.size]
    (stored_crc,) = _CRC.unpack_from(data, size - _CRC.size)
    if stored_crc != _crc(data[len(MAGIC) : _PREAMBLE.size], body):
        raise BitstreamError("sequence header CRC mismatch: the file header is corrupted")
    width, height, bitdepth, chroma, fps_num, fps_den, count, settings_len = _SEQUENCE_FIXED.unpack_from(body)
    if _SEQUENCE_FIXED.size + settings_len != len(body):
        raise BitstreamError("sequence header length disagrees with its settings length")
    if chroma >= len(CHROMA_FORMATS):
        raise BitstreamError(f"unknown chroma format index {chroma}")
    if fps_num == 0 or fps_den == 0:
        raise BitstreamError(f"frame rate {fps_num}/{fps_den} is invalid")
    try:
        settings = json.loads(body[_SEQUENCE_FIXED.size :].decode("utf-8"))
        json.dumps(settings, ensure_ascii=False).encode("utf-8")  # "\ud800" parses to text no output can hold
    except (ValueError, RecursionError) as err:  # bad UTF-8 or JSON, over 4300 digits, deep nesting, lone surrogates
        raise BitstreamError(f"encoder settings are not valid JSON ({err})") from None
    if not isinstance(settings, dict):
        raise BitstreamError("encoder settings are not a JSON object")
    return SequenceHeader(width, height, bitdepth, Fraction(fps_num, fps_den), count, CHROMA_FORMATS[chroma], settings)


def pack_frame_record(number: int, payload: bytes) -> bytes:
    if not 0 < len(payload) <= MAX_FRAME_BYTES:
        raise BitstreamError(f"frame {number} bitstream of {len(payload)} bytes is out of range")
    fields = struct.pack(">II", number, len(payload))
    return FRAME_MARKER + fields + _CRC.pack(_crc(fields, payload)) + payload


def parse_record_header(data: bytes, offset: int, file_size: int) -> tuple[int, int, int]:
    """Frame number, payload length and CRC of the record at `offset`, with its length validated."""
    if len(data) < RECORD_HEADER_BYTES:
        raise BitstreamError(f"truncated frame record header at byte {offset}")
    marker, number, length, crc = _RECORD.unpack_from(data)
    if marker != FRAME_MARKER:
        raise BitstreamError(f"no frame record at byte {offset} (found {marker!r})")
    if not 0 < length <= MAX_FRAME_BYTES:
        raise BitstreamError(f"frame {number}: record length {length} is out of range")
    if offset + RECORD_HEADER_BYTES + length > file_size:
        raise BitstreamError(
            f"frame {number} is truncated: its record needs {RECORD_HEADER_BYTES + length} bytes at byte "
            f"{offset}, the file ends {file_size - offset} bytes later"
        )
    return number, length, crc


def check_payload(number: int, length: int, crc: int, payload: bytes) -> bytes:
    if _crc(struct.pack(">II", number, length), payload) != crc:
        raise BitstreamError(f"frame {number}: CRC mismatch, its bitstream is corrupted")
    return payload


def pack_index(entries: list[IndexEntry], index_offset: int) -> bytes:
    """The index followed by the footer that points at it."""
    body = _INDEX_HEAD.pack(INDEX_MARKER, len(entries)) + b"".join(
        _INDEX_ENTRY.pack(entry.offset, entry.length) for entry in entries
    )
    return body + _CRC.pack(_crc(body)) + _FOOTER.pack(index_offset, FOOTER_MAGIC)


def parse_footer(data: bytes) -> int | None:
    """The index offset from the last FOOTER_BYTES of a file, or None when there is no footer."""
    if len(data) != FOOTER_BYTES:
        return None
    offset, magic = _FOOTER.unpack(data)
    return offset if magic == FOOTER_MAGIC else None


def parse_index(data: bytes, first_record: int, index_offset: int) -> list[IndexEntry]:
    """Entries of an index whose bytes run from `index_offset` to the footer; checks they tile the file."""
    if len(data) < _INDEX_HEAD.size + _CRC.size:
        raise BitstreamError("index is truncated")
    marker, count = _INDEX_HEAD.unpack_from(data)
    if marker != INDEX_MARKER:
        raise BitstreamError("index marker is missing")
    if len(data) != _INDEX_HEAD.size + count * _INDEX_ENTRY.size + _CRC.size:
        raise BitstreamError(f"index of {count} frames does not fit its {len(data)} bytes")
    (stored_crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if stored_crc != _crc(data[: -_CRC.size]):
        raise BitstreamError("index CRC mismatch")
    entries = []
    expected_offset = first_record
    for number in range(count):
        offset, length = _INDEX_ENTRY.unpack_from(data, _INDEX_HEAD.size + number * _INDEX_ENTRY.size)
        entry = IndexEntry(number, offset, length)
        if offset != expected_offset or not 0 < length <= MAX_FRAME_BYTES or entry.end > index_offset:
            raise BitstreamError(f"index entry of frame {number} is inconsistent")
        entries.append(entry)
        expected_offset = entry.end
    if expected_offset != index_offset:
        raise BitstreamError("index does not cover the frame records")
    return entries


@dataclass(frozen=True)
class ScanResult:
    """Records found by walking a file: complete ones, and where the last complete one ends."""

    entries: list[IndexEntry]
    end: int
    trailing_bytes: int


def scan_records(handle: BinaryIO, first_record: int, file_size: int) -> ScanResult:
    """Walk the records from `first_record`, reading their headers only (payloads are skipped).

    A last record cut short by the end of the file (an interrupted encode) ends the walk quietly and
    is counted in `trailing_bytes`; a wrong marker, length or frame number is corruption and raises.
    An index marker also ends the walk (a finished file whose footer was lost).
    """
    entries: list[IndexEntry] = []
    offset = first_record
    while offset < file_size:
        handle.seek(offset)
        head = handle.read(RECORD_HEADER_BYTES)
        if head[:4] == INDEX_MARKER:
            break
        if len(head) < RECORD_HEADER_BYTES and FRAME_MARKER.startswith(head[:4]):
            break
        if len(head) == RECORD_HEADER_BYTES and head[:4] == FRAME_MARKER:
            length = _RECORD.unpack_from(head)[2]
            if 0 < length <= MAX_FRAME_BYTES and offset + RECORD_HEADER_BYTES + length > file_size:
                break
        number, length, _ = parse_record_header(head, offset, file_size)
        if number != len(entries):
            raise BitstreamError(f"record at byte {offset} holds frame {number}, expected frame {len(entries)}")
        entry = IndexEntry(number, offset, length)
        entries.append(entry)
        offset = entry.end
    return ScanResult(entries, offset, file_size - offset)


class FileReader(ABC):
    """A container file (a path, or a binary handle it takes over) opened by the subclass' `_open`; the
    handle is closed on any error there, and a BitstreamError is prefixed with the file's name."""

    def __init__(self, path: str | Path | BinaryIO, name: str | None = None) -> None:
        if isinstance(path, (str, Path)):
            self._handle: BinaryIO = open(path, "rb")
            self.name = name or str(path)
        else:
            self._handle = path
            self.name = name or str(getattr(path, "name", "container"))
        try:
            self._open()
        except BitstreamError as error:
            self._handle.close()
            raise BitstreamError(f"{self.name}: {error}") from None
        except BaseException:
            self._handle.close()
            raise

    @abstractmethod
    def _open(self) -> None:
        """Read and check what the reader needs from the file (its header, its index)."""

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ContainerReader(FileReader):
    """Random access to the frames of a container, complete or cut short.

    `complete` is True for a finished file (frame count in the header, valid index); an unfinished
    one (an interrupted encode) gives access to its complete frames and reports `trailing_bytes`.
    """

    def _open(self) -> None:
        handle = self._handle
        self.file_size = handle.seek(0, os.SEEK_END)
        handle.seek(0)
        head = handle.read(_PREAMBLE.size)
        size = file_header_size(head)
        self.header = parse_file_header(head + handle.read(size - len(head)))
        self.first_record = size
        self.indexed = False
        entries = self._read_index()
        if entries is not None:
            self.indexed = True
            self.entries = entries
            self.trailing_bytes = 0
        else:
            scan = scan_records(handle, size, self.file_size)
            self.entries = scan.entries
            self.trailing_bytes = scan.trailing_bytes
        count = self.header.frame_count
        if count and len(self.entries) != count:
            raise BitstreamError(
                f"container is truncated: its header announces {count} frames, {len(self.entries)} are complete"
            )
        if count and not self.indexed:
            raise BitstreamError("container is truncated or damaged: the file is finished but its index is missing")
        self.complete = bool(count) and self.indexed

    def _read_index(self) -> list[IndexEntry] | None:
        """The index of a finished file; None when there is no footer (an unfinished file)."""
        if self.file_size < self.first_record + FOOTER_BYTES:
            return None
        self._handle.seek(self.file_size - FOOTER_BYTES)
        index_offset = parse_footer(self._handle.read(FOOTER_BYTES))
        if index_offset is None:
            return None
        if not self.first_record <= index_offset <= self.file_size - FOOTER_BYTES:
            raise BitstreamError(f"index offset {index_offset} is outside the file")
        index_bytes = self.file_size - FOOTER_BYTES - index_offset
        if index_bytes > _INDEX_HEAD.size + MAX_FRAMES * _INDEX_ENTRY.size + _CRC.size:
            raise BitstreamError("index is too large")
        self._handle.seek(index_offset)
        return parse_index(self._handle.read(index_bytes), self.first_record, index_offset)

    @property
    def frame_count(self) -> int:
        return len(self.entries)

    def read_frame(self, number: int) -> bytes:
        """The bitstream of one frame, CRC-checked; no other frame's bytes are read."""
        try:
            return self._read_frame(number)
        except BitstreamError as error:
            raise BitstreamError(f"{self.name}: {error}") from None

    def _read_frame(self, number: int) -> bytes:
        if not 0 <= number < len(self.entries):
            raise BitstreamError(f"frame {number} is not in the container ({len(self.entries)} frames)")
        entry = self.entries[number]
        self._handle.seek(entry.offset)
        stored_number, length, crc = parse_record_header(
            self._handle.read(RECORD_HEADER_BYTES), entry.offset, self.file_size
        )
        if stored_number != number or length != entry.length:
            raise BitstreamError(f"frame {number}: record header disagrees with the index")
        return check_payload(number, length, crc, self._handle.read(length))


class ContainerWriter:
    """Appends frame records to `<path>` durably and finishes it with a frame count and an index.

    The file is locked while it is written, so a second encode into the same file fails at once.
    """

    def __init__(self, handle: BinaryIO, path: Path, header: SequenceHeader, entries: list[IndexEntry]) -> None:
        self._handle = handle
        self.path = path
        self.header = header
        self.entries = entries
        self._header_size = len(pack_file_header(header))

    @classmethod
    def create(cls, path: Path, header: SequenceHeader) -> ContainerWriter:
        handle = open(path, "w+b")
        _lock(handle, path)
        started = replace(header, frame_count=0)
        handle.write(pack_file_header(started))
        _sync(handle)
        return cls(handle, path, started, [])

    @classmethod
    def append_to(cls, path: Path) -> ContainerWriter:
        """Reopen an unfinished file to continue it after its last complete frame."""
        handle = open(path, "r+b")
        try:
            _lock(handle, path)
            reader = ContainerReader(handle)
            if reader.header.frame_count:
                raise BitstreamError(f"{path} is a finished container; there is nothing to resume")
            entries = _entries_with_valid_payloads(reader)
            end = entries[-1].end if entries else reader.first_record
            handle.truncate(end)
            handle.seek(end)
            _sync(handle)
        except BaseException:
            handle.close()
            raise
        return cls(handle, path, reader.header, entries)

    @property
    def frame_count(self) -> int:
        return len(self.entries)

    def append(self, payload: bytes) -> IndexEntry:
        """Append one frame and make it durable before returning."""
        number = len(self.entries)
        offset = self._handle.seek(0, os.SEEK_END)
        self._handle.write(pack_frame_record(number, payload))
        _sync(self._handle)
        entry = IndexEntry(number, offset, len(payload))
        self.entries.append(entry)
        return entry

    def finish(self) -> SequenceHeader:
        """Write the frame count and the index; the file is then a finished container."""
        if not self.entries:
            raise BitstreamError("a container needs at least one frame")
        final = replace(self.header, frame_count=len(self.entries))
        index_offset = self.entries[-1].end
        self._handle.seek(index_offset)
        self._handle.write(pack_index(self.entries, index_offset))
        self._handle.truncate()
        self._handle.seek(0)
        self._handle.write(pack_file_header(final))
        _sync(self._handle)
        self.header = final
        return final

    def close(self) -> None:
        self._handle.close()


def _entries_with_valid_payloads(reader: ContainerReader) -> list[IndexEntry]:
    """The frames before the first one whose CRC fails (a crash can leave zeroed blocks behind)."""
    valid: list[IndexEntry] = []
    for entry in reader.entries:
        try:
            reader.read_frame(entry.number)
        except BitstreamError:
            break
        valid.append(entry)
    return valid


def _lock(handle: BinaryIO, path: Path) -> None:
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise BitstreamError(f"{path} is being written by another vcodec process") from None


def _sync(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
