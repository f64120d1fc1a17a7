"""The `.vcc` container: one sequence of independently coded intra frames, with random access.

Byte layout of version 3 (integers big-endian, `v` an unsigned LEB128 varint; the full tables, and
those of versions 1 and 2, are in docs/container.md):

    file header      magic (8) | version u16 | width u16 | height u16 | bit depth u8 | flags u8 |
                     frame count v | fps numerator v | fps denominator v | [RGB picture u8] |
                     [settings length v | settings] | CRC-32
    frame record     "VCFR" | frame number v | payload length v | CRC-32 | frame bitstream
    ...              one record per frame, in frame order
    index            "VCIX" | count u32 | count x (record offset u64, payload length u32) | CRC-32
    footer           index offset u64 | "VCCINDEX"          (index and footer: files of 2 frames or more)

A one-frame file thus carries 34 to 38 bytes around its frame bitstream, one more when it was coded
from an RGB picture (version 1: 94 plus a JSON settings record of some 240). Version 3 is version 2 with
the RGB picture byte: how a picture's RGB became YUV (matrix, range) and whether its width or height is
one less than the coded frame's, so that `vcodec decode -o out.png` converts back the same way. The encoder settings are always in an unfinished file, where
`--resume` compares them, and in a finished one only when asked: `finish` writes the finished file
anew (header, records, index) and puts it in place of the unfinished one in one rename.

Records are self-delimiting and are appended and flushed one at a time, so a file cut short at any
byte still holds every frame completed before the cut. A reader uses the index when there is one and
otherwise walks the records, so the index only saves time, never holds information the records lack.
Versions 1 and 2 are still read (and an unfinished file is continued in its own record format until
`finish` writes it as version 3).

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
from vcodec.io.output import fsync_directory
from vcodec.types import (
    COLOR_MATRICES,
    COLOR_RANGES,
    SUPPORTED_BITDEPTHS,
    BitstreamError,
    ColorConversion,
    RgbPicture,
)

MAGIC = b"\x89VCC\r\n\x1a\n"
FORMAT_VERSION = 3  # what this vcodec writes
READABLE_VERSIONS: tuple[int, ...] = (1, 2, 3)
FRAME_MARKER = b"VCFR"
INDEX_MARKER = b"VCIX"
FOOTER_MAGIC = b"VCCINDEX"

# Stored as an index into this tuple: append new formats, never reorder.
CHROMA_FORMATS: tuple[str, ...] = ("420",)

MAX_SETTINGS_BYTES = 65535
MAX_FRAME_BYTES = 1 << 30
MAX_FRAMES = (1 << 32) - 1
# Version 2 writes an index only for files of at least this many frames: a one-frame file needs none.
INDEX_MIN_FRAMES = 2

_PREAMBLE = struct.Struct(">8sH")  # magic, format version
_V1_LENGTH = struct.Struct(">I")  # version 1: sequence header length, after the preamble
_V1_SEQUENCE_FIXED = struct.Struct(">HHBBIIIH")  # w, h, bit depth, chroma, fps num, fps den, frames, settings length
_V2_FIXED = struct.Struct(">HHBB")  # w, h, bit depth, flags
_V1_RECORD = struct.Struct(">4sIII")  # marker, frame number, payload length, CRC-32
_INDEX_HEAD = struct.Struct(">4sI")  # marker, count
_INDEX_ENTRY = struct.Struct(">QI")  # record offset, payload length
_CRC = struct.Struct(">I")
_FOOTER = struct.Struct(">Q8s")  # index offset, footer magic

# Flags byte (versions 2 and 3): bits 0-3 the chroma format index, bit 7 "settings follow"; version 3 adds
# bit 6, "an RGB picture byte follows". The other bits are 0.
_FLAG_CHROMA = 0x0F
_FLAG_SETTINGS = 0x80
_FLAG_PICTURE = 0x40
_KNOWN_FLAGS: dict[int, int] = {2: _FLAG_CHROMA | _FLAG_SETTINGS, 3: _FLAG_CHROMA | _FLAG_SETTINGS | _FLAG_PICTURE}
# RGB picture byte (version 3): bits 0-3 the matrix index (COLOR_MATRICES), bits 4-5 the range index
# (COLOR_RANGES), bit 6 "the picture is one column narrower than the frame", bit 7 "one row shorter".
_PICTURE_MATRIX = 0x0F
_PICTURE_RANGE_SHIFT = 4
_PICTURE_RANGE = 0x30
_PICTURE_ODD_WIDTH = 0x40
_PICTURE_ODD_HEIGHT = 0x80
_VARINT_MAX_BYTES = 5  # a u32 in 7-bit groups

RECORD_HEADER_BYTES = _V1_RECORD.size  # version 1; a version 2 record header takes 10 to 18 bytes
INDEX_ENTRY_BYTES = _INDEX_ENTRY.size
FOOTER_BYTES = _FOOTER.size
# Bytes from the start of a file that are enough to learn the size of its header (any version), and to
# read a too-long settings length whole (so that it is refused as such, not as a file cut short).
HEADER_PROBE_BYTES = _PREAMBLE.size + _V2_FIXED.size + 4 * _VARINT_MAX_BYTES + 1
# The most bytes a record header takes, the fewest a record takes (a 1-byte payload), and the fewest a
# frame takes in a finished file (its record, and in version 1 its index entry), by version.
# (Version 3 records are version 2's.)
MAX_RECORD_HEADER_BYTES: dict[int, int] = {1: RECORD_HEADER_BYTES, 2: 4 + 2 * _VARINT_MAX_BYTES + _CRC.size}
MIN_RECORD_BYTES: dict[int, int] = {1: RECORD_HEADER_BYTES + 1, 2: 4 + 1 + 1 + _CRC.size + 1}
MIN_FRAME_BYTES: dict[int, int] = {1: RECORD_HEADER_BYTES + INDEX_ENTRY_BYTES, 2: MIN_RECORD_BYTES[2]}
for _table in (MAX_RECORD_HEADER_BYTES, MIN_RECORD_BYTES, MIN_FRAME_BYTES):
    _table[3] = _table[2]


@dataclass(frozen=True)
class SequenceHeader:
    """What is common to all frames; `frame_count` is 0 while the file is being written. Empty
    `settings` are not stored (versions 2 and 3). `picture`: the sequence is one RGB picture's (version 3),
    None for YUV video (and every file of versions 1 and 2)."""

    width: int
    height: int
    bitdepth: int
    fps: Fraction
    frame_count: int = 0
    chroma_format: str = "420"
    settings: dict[str, Any] = field(default_factory=dict)
    picture: RgbPicture | None = None

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
        if self.picture is not None and self.picture.coded_size() != (self.width, self.height):
            raise BitstreamError(f"picture size {self.picture.width}x{self.picture.height} does not fit the "
                                 f"frame size {self.width}x{self.height}")


@dataclass(frozen=True)
class IndexEntry:
    """Where frame `number`'s record starts, how long its payload is, and how long its record header."""

    number: int
    offset: int
    length: int
    head: int = RECORD_HEADER_BYTES

    @property
    def payload_offset(self) -> int:
        return self.offset + self.head

    @property
    def end(self) -> int:
        return self.offset + self.head + self.length


@dataclass(frozen=True)
class RecordHead:
    """A parsed record header: `size` is its bytes, `fields` the stored bytes its CRC covers before the payload."""

    number: int
    length: int
    crc: int
    size: int
    fields: bytes


class RecordCutShort(BitstreamError):
    """A record that the end of the file cuts short (what an interrupted encode leaves), not damage.
    `number` is its frame number when its header was whole."""

    def __init__(self, message: str, number: int | None = None) -> None:
        super().__init__(message)
        self.number = number


def _crc(*parts: bytes) -> int:
    value = 0
    for part in parts:
        value = zlib.crc32(part, value)
    return value


# --- varints --------------------------------------------------------------------------------------


def pack_varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits a byte, least significant group first, high bit set on all but the last."""
    if not 0 <= value <= MAX_FRAMES:
        raise BitstreamError(f"varint value {value} is out of range")
    out = bytearray()
    while True:
        group, value = value & 0x7F, value >> 7
        out.append(group | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_varint(data: bytes, position: int, what: str) -> tuple[int, int]:
    """The value at `position` and the position after it. The end of `data` inside it raises
    RecordCutShort; more than 5 bytes or a needless zero group (two spellings of one number) is damage."""
    value = 0
    for count in range(_VARINT_MAX_BYTES):
        if position + count >= len(data):
            raise RecordCutShort(f"the data ends inside the {what}")
        byte = data[position + count]
        value |= (byte & 0x7F) << (7 * count)
        if not byte & 0x80:
            if count and not byte:
                raise BitstreamError(f"the {what} is not minimally encoded")
            if value > MAX_FRAMES:
                raise BitstreamError(f"the {what} {value} is out of range")
            return value, position + count + 1
    raise BitstreamError(f"the {what} runs past {_VARINT_MAX_BYTES} bytes")


# --- file header -----------------------------------------------------------------------------------


def _settings_bytes(settings: dict[str, Any]) -> bytes:
    data = json.dumps(settings, sort_keys=True, separators=(",", ":")).encode("utf-8")
    if len(data) > MAX_SETTINGS_BYTES:
        raise BitstreamError(f"encoder settings take {len(data)} bytes (at most {MAX_SETTINGS_BYTES})")
    return data


def pack_file_header(header: SequenceHeader, version: int = FORMAT_VERSION) -> bytes:
    """The file header in `version`'s layout (version 1 is kept for tools that rewrite old files)."""
    settings = _settings_bytes(header.settings)
    chroma = CHROMA_FORMATS.index(header.chroma_format)
    if version == 1:
        body = _V1_SEQUENCE_FIXED.pack(header.width, header.height, header.bitdepth, chroma, header.fps.numerator,
                                       header.fps.denominator, header.frame_count, len(settings)) + settings
        checked = _PREAMBLE.pack(MAGIC, 1)[len(MAGIC) :] + _V1_LENGTH.pack(len(body)) + body
    elif version in (2, 3):
        if header.picture is not None and version < 3:
            raise BitstreamError(f"container format version {version} cannot describe an RGB picture")
        stored = bool(header.settings)
        flags = chroma | (_FLAG_SETTINGS if stored else 0) | (_FLAG_PICTURE if header.picture else 0)
        checked = b"".join([
            struct.pack(">H", version),
            _V2_FIXED.pack(header.width, header.height, header.bitdepth, flags),
            pack_varint(header.frame_count), pack_varint(header.fps.numerator), pack_varint(header.fps.denominator),
            bytes([pack_picture(header.picture)]) if header.picture else b"",
            pack_varint(len(settings)) + settings if stored else b"",
        ])
    else:
        raise BitstreamError(f"container format version {version} cannot be written")
    return MAGIC + checked + _CRC.pack(_crc(checked))


def container_version(data: bytes) -> int:
    """The format version of a file, from its first bytes; refuses what is not a container this vcodec reads."""
    if len(data) < _PREAMBLE.size:
        raise BitstreamError(f"file is too short for a vcodec container ({len(data)} bytes)")
    magic, version = _PREAMBLE.unpack_from(data)
    if magic != MAGIC:
        raise BitstreamError("not a vcodec container (bad magic number)")
    if version not in READABLE_VERSIONS:
        raise BitstreamError(
            f"container format version {version} is not supported (this vcodec reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))})"
        )
    return version


def pack_picture(picture: RgbPicture) -> int:
    """The RGB picture byte of a version 3 header."""
    conversion = picture.conversion
    return (COLOR_MATRICES.index(conversion.matrix) | COLOR_RANGES.index(conversion.range) << _PICTURE_RANGE_SHIFT
            | (_PICTURE_ODD_WIDTH if picture.width % 2 else 0) | (_PICTURE_ODD_HEIGHT if picture.height % 2 else 0))


def parse_picture(value: int, width: int, height: int) -> RgbPicture:
    """The RGB picture a version 3 header's byte describes, for frames of `width` x `height`."""
    matrix, range_index = value & _PICTURE_MATRIX, (value & _PICTURE_RANGE) >> _PICTURE_RANGE_SHIFT
    if matrix >= len(COLOR_MATRICES):
        raise BitstreamError(f"unknown colour matrix index {matrix}")
    if range_index >= len(COLOR_RANGES):
        raise BitstreamError(f"unknown colour range index {range_index}")
    conversion = ColorConversion(COLOR_MATRICES[matrix], COLOR_RANGES[range_index])
    return RgbPicture(conversion, width - bool(value & _PICTURE_ODD_WIDTH), height - bool(value & _PICTURE_ODD_HEIGHT))


@dataclass(frozen=True)
class _V2Fields:
    width: int
    height: int
    bitdepth: int
    flags: int
    frame_count: int
    fps_num: int
    fps_den: int
    picture: int | None  # the RGB picture byte (version 3, flags bit 6)
    settings_at: int
    settings_length: int

    @property
    def size(self) -> int:
        return self.settings_at + self.settings_length + _CRC.size


def _v2_fields(data: bytes, version: int) -> _V2Fields:
    """The fields of a version 2 or 3 header up to its settings, from the file's first bytes."""
    position = _PREAMBLE.size + _V2_FIXED.size
    if len(data) < position:
        raise BitstreamError(f"file is truncated inside its sequence header ({len(data)} bytes)")
    width, height, bitdepth, flags = _V2_FIXED.unpack_from(data, _PREAMBLE.size)
    try:
        count, position = read_varint(data, position, "frame count")
        fps_num, position = read_varint(data, position, "frame rate numerator")
        fps_den, position = read_varint(data, position, "frame rate denominator")
        picture = None
        if flags & _FLAG_PICTURE and version >= 3:
            if position >= len(data):
                raise RecordCutShort("the data ends inside the RGB picture byte")
            picture, position = data[position], position + 1
        settings_length = 0
        if flags & _FLAG_SETTINGS:
            settings_length, position = read_varint(data, position, "settings length")
    except RecordCutShort:
        raise BitstreamError(f"file is truncated inside its sequence header ({len(data)} bytes)") from None
    if settings_length > MAX_SETTINGS_BYTES:
        raise BitstreamError(f"settings length {settings_length} is out of range")
    return _V2Fields(width, height, bitdepth, flags, count, fps_num, fps_den, picture, position, settings_length)


def file_header_size(data: bytes) -> int:
    """Bytes the file header takes, from its first HEADER_PROBE_BYTES (or all of a shorter file), validated."""
    version = container_version(data)
    if version == 1:
        if len(data) < _PREAMBLE.size + _V1_LENGTH.size:
            raise BitstreamError(f"file is too short for a vcodec container ({len(data)} bytes)")
        (length,) = _V1_LENGTH.unpack_from(data, _PREAMBLE.size)
        if not _V1_SEQUENCE_FIXED.size <= length <= _V1_SEQUENCE_FIXED.size + MAX_SETTINGS_BYTES:
            raise BitstreamError(f"sequence header length {length} is out of range")
        return _PREAMBLE.size + _V1_LENGTH.size + length + _CRC.size
    return _v2_fields(data, version).size


def parse_file_header(data: bytes) -> SequenceHeader:
    """Parse exactly the bytes `file_header_size` announced (more may follow)."""
    size = file_header_size(data)
    if len(data) < size:
        raise BitstreamError(f"file is truncated inside its sequence header ({len(data)} of {size} bytes)")
    (stored_crc,) = _CRC.unpack_from(data, size - _CRC.size)
    if stored_crc != _crc(data[len(MAGIC) : size - _CRC.size]):
        raise BitstreamError("sequence header CRC mismatch: the file header is corrupted")
    version = container_version(data)
    picture = None
    if version == 1:
        body = data[_PREAMBLE.size + _V1_LENGTH.size : size - _CRC.size]
        width, height, bitdepth, chroma, fps_num, fps_den, count, settings_len = _V1_SEQUENCE_FIXED.unpack_from(body)
        if _V1_SEQUENCE_FIXED.size + settings_len != len(body):
            raise BitstreamError("sequence header length disagrees with its settings length")
        settings = _parse_settings(body[_V1_SEQUENCE_FIXED.size :])
    else:
        fields = _v2_fields(data, version)
        width, height, bitdepth, count = fields.width, fields.height, fields.bitdepth, fields.frame_count
        fps_num, fps_den, chroma = fields.fps_num, fields.fps_den, fields.flags & _FLAG_CHROMA
        if fields.flags & ~_KNOWN_FLAGS[version]:
            raise BitstreamError(f"sequence header flags {fields.flags:#04x} set reserved bits")
        if fields.picture is not None:
            picture = parse_picture(fields.picture, width, height)
        stored = data[fields.settings_at : fields.settings_at + fields.settings_length]
        settings = _parse_settings(stored) if fields.flags & _FLAG_SETTINGS else {}
    if chroma >= len(CHROMA_FORMATS):
        raise BitstreamError(f"unknown chroma format index {chroma}")
    if fps_num == 0 or fps_den == 0:
        raise BitstreamError(f"frame rate {fps_num}/{fps_den} is invalid")
    return SequenceHeader(width, height, bitdepth, Fraction(fps_num, fps_den), count, CHROMA_FORMATS[chroma], settings,
                          picture)


def _parse_settings(data: bytes) -> dict[str, Any]:
    try:
        settings = json.loads(data.decode("utf-8"))
        json.dumps(settings, ensure_ascii=False).encode("utf-8")  # "\ud800" parses to text no output can hold
    except (ValueError, RecursionError) as err:  # bad UTF-8 or JSON, over 4300 digits, deep nesting, lone surrogates
        raise BitstreamError(f"encoder settings are not valid JSON ({err})") from None
    if not isinstance(settings, dict):
        raise BitstreamError("encoder settings are not a JSON object")
    return settings


# --- frame records ---------------------------------------------------------------------------------


def _record_fields(number: int, length: int, version: int) -> bytes:
    """The stored number and length, which the record's CRC covers before its payload."""
    if version == 1:
        return struct.pack(">II", number, length)
    return pack_varint(number) + pack_varint(length)


def record_head_size(number: int, length: int, version: int = FORMAT_VERSION) -> int:
    return len(FRAME_MARKER) + len(_record_fields(number, length, version)) + _CRC.size


def pack_frame_record(number: int, payload: bytes, version: int = FORMAT_VERSION) -> bytes:
    if not 0 < len(payload) <= MAX_FRAME_BYTES:
        raise BitstreamError(f"frame {number} bitstream of {len(payload)} bytes is out of range")
    fields = _record_fields(number, len(payload), version)
    return FRAME_MARKER + fields + _CRC.pack(_crc(fields, payload)) + payload


def parse_record_header(data: bytes, offset: int, file_size: int, version: int = FORMAT_VERSION) -> RecordHead:
    """The record header at `offset`, from the file's bytes there (MAX_RECORD_HEADER_BYTES of them, or all
    that remain), with its length validated. A header or payload that the end of the file cuts short
    raises RecordCutShort; anything else wrong raises BitstreamError."""
    marker = data[: len(FRAME_MARKER)]
    if len(marker) < len(FRAME_MARKER) and FRAME_MARKER.startswith(marker):
        raise RecordCutShort(f"truncated frame record header at byte {offset}")
    if marker != FRAME_MARKER:
        raise BitstreamError(f"no frame record at byte {offset} (found {marker!r})")
    if version == 1:
        if len(data) < RECORD_HEADER_BYTES:
            raise RecordCutShort(f"truncated frame record header at byte {offset}")
        _, number, length, _ = _V1_RECORD.unpack_from(data)
        position = len(FRAME_MARKER) + 8
    else:
        try:
            number, position = read_varint(data, len(FRAME_MARKER), "frame number")
            length, position = read_varint(data, position, "payload length")
        except RecordCutShort:
            raise RecordCutShort(f"truncated frame record header at byte {offset}") from None
        except BitstreamError as error:
            raise BitstreamError(f"frame record at byte {offset}: {error}") from None
        if len(data) < position + _CRC.size:
            raise RecordCutShort(f"truncated frame record header at byte {offset}")
    (crc,) = _CRC.unpack_from(data, position)
    size = position + _CRC.size
    if not 0 < length <= MAX_FRAME_BYTES:
        raise BitstreamError(f"frame {number}: record length {length} is out of range")
    if offset + size + length > file_size:
        raise RecordCutShort(
            f"frame {number} is truncated: its record needs {size + length} bytes at byte "
            f"{offset}, the file ends {file_size - offset} bytes later",
            number,
        )
    return RecordHead(number, length, crc, size, data[len(FRAME_MARKER) : position])


def check_payload(head: RecordHead, payload: bytes) -> bytes:
    if len(payload) != head.length or _crc(head.fields, payload) != head.crc:
        raise BitstreamError(f"frame {head.number}: CRC mismatch, its bitstream is corrupted")
    return payload


# --- index and footer ------------------------------------------------------------------------------


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


def parse_index(data: bytes, first_record: int, index_offset: int, version: int = FORMAT_VERSION) -> list[IndexEntry]:
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
        if offset != expected_offset or not 0 < length <= MAX_FRAME_BYTES:
            raise BitstreamError(f"index entry of frame {number} is inconsistent")
        entry = IndexEntry(number, offset, length, record_head_size(number, length, version))
        if entry.end > index_offset:
            raise BitstreamError(f"index entry of frame {number} is inconsistent")
        entries.append(entry)
        expected_offset = entry.end
    if expected_offset != index_offset:
        raise BitstreamError("index does not cover the frame records")
    return entries


def index_required(version: int, frame_count: int) -> bool:
    """Whether a finished file of `frame_count` frames must end with an index."""
    return version == 1 or frame_count >= INDEX_MIN_FRAMES


@dataclass(frozen=True)
class ScanResult:
    """Records found by walking a file: complete ones, and where the last complete one ends."""

    entries: list[IndexEntry]
    end: int
    trailing_bytes: int


def scan_records(handle: BinaryIO, first_record: int, file_size: int, version: int = FORMAT_VERSION) -> ScanResult:
    """Walk the records from `first_record`, reading their headers only (payloads are skipped).

    A last record cut short by the end of the file (an interrupted encode) ends the walk quietly and
    is counted in `trailing_bytes`; a wrong marker, length or frame number is corruption and raises.
    An index marker also ends the walk (a finished file whose footer was lost).
    """
    entries: list[IndexEntry] = []
    offset = first_record
    while offset < file_size:
        handle.seek(offset)
        head = handle.read(MAX_RECORD_HEADER_BYTES[version])
        if head[:4] == INDEX_MARKER:
            break
        try:
            record = parse_record_header(head, offset, file_size, version)
        except RecordCutShort:
            break
        if record.number != len(entries):
            raise BitstreamError(f"record at byte {offset} holds frame {record.number}, expected frame {len(entries)}")
        entry = IndexEntry(record.number, offset, record.length, record.size)
        entries.append(entry)
        offset = entry.end
    return ScanResult(entries, offset, file_size - offset)


# --- reading and writing files ---------------------------------------------------------------------


def read_file_header(handle: BinaryIO) -> tuple[int, SequenceHeader, int]:
    """Version, sequence header and size of the file header of an open file."""
    handle.seek(0)
    probe = handle.read(HEADER_PROBE_BYTES)
    version = container_version(probe)
    size = file_header_size(probe)
    handle.seek(0)
    return version, parse_file_header(handle.read(size)), size


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

    `complete` is True for a finished file (frame count in the header, and the index its size
    requires); an unfinished one (an interrupted encode) gives access to its complete frames and
    reports `trailing_bytes`. `version` is the file's container format version.
    """

    def _open(self) -> None:
        handle = self._handle
        self.file_size = handle.seek(0, os.SEEK_END)
        self.version, self.header, self.first_record = read_file_header(handle)
        self.indexed = False
        entries = self._read_index()
        if entries is not None:
            self.indexed = True
            self.entries = entries
            self.trailing_bytes = 0
        else:
            scan = scan_records(handle, self.first_record, self.file_size, self.version)
            self.entries = scan.entries
            self.trailing_bytes = scan.trailing_bytes
        count = self.header.frame_count
        if count and len(self.entries) != count:
            raise BitstreamError(
                f"container is truncated: its header announces {count} frames, {len(self.entries)} are complete"
            )
        if count and not self.indexed and index_required(self.version, count):
            raise BitstreamError("container is truncated or damaged: the file is finished but its index is missing")
        if count and self.trailing_bytes:
            raise BitstreamError(f"container is damaged: {self.trailing_bytes} bytes follow its last frame")
        self.complete = bool(count)

    def _read_index(self) -> list[IndexEntry] | None:
        """The index of a finished file; None when there is no footer (an unfinished or a one-frame file)."""
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
        return parse_index(self._handle.read(index_bytes), self.first_record, index_offset, self.version)

    @property
    def frame_count(self) -> int:
        return len(self.entries)

    @property
    def payload_bytes(self) -> int:
        """Bytes of the frame bitstreams; the rest of the file is the container's."""
        return sum(entry.length for entry in self.entries)

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
        record = parse_record_header(
            self._handle.read(MAX_RECORD_HEADER_BYTES[self.version]), entry.offset, self.file_size, self.version
        )
        if record.number != number or record.length != entry.length or record.size != entry.head:
            raise BitstreamError(f"frame {number}: record header disagrees with the index")
        self._handle.seek(entry.payload_offset)
        return check_payload(record, self._handle.read(record.length))


class ContainerWriter:
    """Appends frame records to `<path>` durably and finishes it with a frame count and an index.

    The file is locked while it is written, so a second encode into the same file fails at once. An
    unfinished file always holds the encoder settings (`--resume` compares them); `finish` keeps them
    only when asked.
    """

    def __init__(
        self, handle: BinaryIO, path: Path, header: SequenceHeader, entries: list[IndexEntry], version: int
    ) -> None:
        self._handle = handle
        self.path = path
        self.header = header
        self.entries = entries
        self.version = version

    @classmethod
    def create(cls, path: Path, header: SequenceHeader) -> ContainerWriter:
        handle = open(path, "w+b")
        _lock(handle, path)
        started = replace(header, frame_count=0)
        handle.write(pack_file_header(started))
        _sync(handle)
        return cls(handle, path, started, [], FORMAT_VERSION)

    @classmethod
    def append_to(cls, path: Path) -> ContainerWriter:
        """Reopen an unfinished file to continue it after its last complete frame (in the file's own
        format version, which `finish` turns into the current one)."""
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
        return cls(handle, path, reader.header, entries, reader.version)

    @property
    def frame_count(self) -> int:
        return len(self.entries)

    def append(self, payload: bytes) -> IndexEntry:
        """Append one frame and make it durable before returning."""
        number = len(self.entries)
        offset = self._handle.seek(0, os.SEEK_END)
        record = pack_frame_record(number, payload, self.version)
        self._handle.write(record)
        _sync(self._handle)
        entry = IndexEntry(number, offset, len(payload), len(record) - len(payload))
        self.entries.append(entry)
        return entry

    def finish(self, keep_settings: bool = True, settings: dict[str, Any] | None = None) -> SequenceHeader:
        """Write the finished file (frame count, settings only if `keep_settings`: `settings` if given, else
        those it was started with; the records, an index if its size needs one) next to the unfinished one
        and rename it over it: a crash leaves one or the other whole. The bytes of the frames are copied,
        CRC-checked, one frame at a time."""
        if not self.entries:
            raise BitstreamError("a container needs at least one frame")
        kept = (self.header.settings if settings is None else settings) if keep_settings else {}
        final = replace(self.header, frame_count=len(self.entries), settings=kept)
        staging = self.path.with_name(self.path.name + ".finishing")
        out = open(staging, "w+b")
        try:  # (no lock of its own: the unfinished file's lock keeps other writers out)
            out.write(pack_file_header(final))
            entries = []
            for entry in self.entries:
                record = pack_frame_record(entry.number, self._payload(entry))
                entries.append(IndexEntry(entry.number, out.tell(), entry.length, len(record) - entry.length))
                out.write(record)
            if index_required(FORMAT_VERSION, len(entries)):
                out.write(pack_index(entries, out.tell()))
            _sync(out)
            os.replace(staging, self.path)
        except BaseException:
            out.close()
            staging.unlink(missing_ok=True)
            raise
        fsync_directory(self.path.parent)
        self._handle.close()
        self._handle, self.header, self.entries, self.version = out, final, entries, FORMAT_VERSION
        return final

    def _payload(self, entry: IndexEntry) -> bytes:
        self._handle.seek(entry.offset)
        record = parse_record_header(self._handle.read(entry.head), entry.offset, 1 << 62, self.version)
        self._handle.seek(entry.payload_offset)
        return check_payload(record, self._handle.read(entry.length))

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
