"""The .vcc container: layout, random access, and what happens to damaged or cut-short files."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import containers
import pytest

from vcodec.bitstream.container import (
    CHROMA_FORMATS,
    FOOTER_BYTES,
    FORMAT_VERSION,
    MAGIC,
    RECORD_HEADER_BYTES,
    ContainerReader,
    ContainerWriter,
    SequenceHeader,
    pack_file_header,
    pack_frame_record,
    parse_file_header,
)
from vcodec.types import BitstreamError

HEADER = SequenceHeader(416, 240, 10, Fraction(30000, 1001), settings={"preset": "fast", "lmbda": 0.001})
PAYLOADS = [bytes([i]) * (10 + 7 * i) for i in range(5)]


def write_container(path: Path, payloads: list[bytes] = PAYLOADS, finish: bool = True) -> None:
    containers.write_container(path, HEADER, payloads, finish)


def test_frozen_enums_and_constants() -> None:
    # Stored in files: changing any of these makes existing containers unreadable.
    assert CHROMA_FORMATS == ("420",)
    assert MAGIC == b"\x89VCC\r\n\x1a\n"
    assert FORMAT_VERSION == 1
    assert RECORD_HEADER_BYTES == 16 and FOOTER_BYTES == 16


def test_header_round_trip_and_layout() -> None:
    data = pack_file_header(HEADER)
    assert data[:8] == MAGIC
    assert struct.unpack(">H", data[8:10]) == (FORMAT_VERSION,)
    width, height, depth, chroma, num, den, count = struct.unpack(">HHBBIII", data[14:32])
    assert (width, height, depth, chroma, num, den, count) == (416, 240, 10, 0, 30000, 1001, 0)
    assert parse_file_header(data) == HEADER


@pytest.mark.parametrize(
    "kwargs", [{"width": 417}, {"height": 0}, {"bitdepth": 12}, {"fps": Fraction(0)}, {"chroma_format": "444"}]
)
def test_header_rejects_out_of_range(kwargs: dict) -> None:
    fields = {"width": 64, "height": 48, "bitdepth": 8, "fps": Fraction(25)} | kwargs
    with pytest.raises(BitstreamError):
        SequenceHeader(**fields)


def test_header_corruption_is_detected() -> None:
    data = bytearray(pack_file_header(HEADER))
    data[16] ^= 0x01
    with pytest.raises(BitstreamError, match="CRC"):
        parse_file_header(bytes(data))
    with pytest.raises(BitstreamError, match="magic"):
        parse_file_header(b"RIFF" + bytes(data[4:]))
    future = bytearray(pack_file_header(HEADER))
    future[9] = 2
    with pytest.raises(BitstreamError, match="version 2"):
        parse_file_header(bytes(future))


def test_finished_container_reads_by_index(tmp_path: Path) -> None:
    path = tmp_path / "seq.vcc"
    write_container(path)
    with ContainerReader(path) as reader:
        assert reader.complete and reader.indexed
        assert reader.header.frame_count == len(PAYLOADS)
        assert reader.header.settings == HEADER.settings
        assert [reader.read_frame(i) for i in range(len(PAYLOADS))] == PAYLOADS
        assert reader.read_frame(3) == PAYLOADS[3]
        with pytest.raises(BitstreamError, match="not in the container"):
            reader.read_frame(5)


def test_random_access_touches_only_its_frame(tmp_path: Path) -> None:
    path = tmp_path / "seq.vcc"
    write_container(path)
    with ContainerReader(path) as reader:
        entry = reader.entries[1]
    data = bytearray(path.read_bytes())
    data[entry.offset + RECORD_HEADER_BYTES] ^= 0xFF  # damage frame 1 only
    path.write_bytes(bytes(data))
    with ContainerReader(path) as reader:
        assert reader.read_frame(2) == PAYLOADS[2]
        with pytest.raises(BitstreamError, match="frame 1: CRC mismatch"):
            reader.read_frame(1)


@pytest.mark.parametrize("cut", [1, RECORD_HEADER_BYTES - 3, RECORD_HEADER_BYTES + 2])
def test_interrupted_file_keeps_its_complete_frames(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "seq.vcc.partial"
    write_container(path, finish=False)
    full = path.read_bytes()
    with ContainerReader(path) as reader:
        last = reader.entries[-1]
    path.write_bytes(full[: last.offset + cut])
    with ContainerReader(path) as reader:
        assert not reader.complete
        assert reader.frame_count == len(PAYLOADS) - 1
        assert reader.trailing_bytes == cut
        assert [reader.read_frame(i) for i in range(reader.frame_count)] == PAYLOADS[:-1]


@pytest.mark.parametrize("cut", [1, FOOTER_BYTES + 30, FOOTER_BYTES + 100])
def test_truncated_finished_file_is_an_error(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "seq.vcc"
    write_container(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - cut])
    with pytest.raises(BitstreamError, match="truncated"):
        ContainerReader(path)


def test_damaged_index_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "seq.vcc"
    write_container(path)
    data = bytearray(path.read_bytes())
    data[-FOOTER_BYTES - 6] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(BitstreamError, match="index"):
        ContainerReader(path)


def test_resume_appends_after_the_last_complete_frame(tmp_path: Path) -> None:
    path = tmp_path / "seq.vcc.partial"
    write_container(path, PAYLOADS[:3], finish=False)
    with open(path, "ab") as handle:
        handle.write(pack_frame_record(3, PAYLOADS[3])[:-4])  # a record cut short by a kill
    writer = ContainerWriter.append_to(path)
    assert writer.frame_count == 3
    writer.append(PAYLOADS[3])
    writer.append(PAYLOADS[4])
    writer.finish()
    writer.close()
    reference = tmp_path / "ref.vcc"
    write_container(reference)
    assert path.read_bytes() == reference.read_bytes()


def test_resume_refuses_a_finished_file(tmp_path: Path) -> None:
    path = tmp_path / "seq.vcc"
    write_container(path)
    with pytest.raises(BitstreamError, match="nothing to resume"):
        ContainerWriter.append_to(path)


def test_a_second_writer_is_locked_out(tmp_path: Path) -> None:
    path = tmp_path / "seq.vcc.partial"
    writer = ContainerWriter.create(path, HEADER)
    writer.append(b"abc")
    try:
        with pytest.raises(BitstreamError, match="another vcodec process"):
            ContainerWriter.append_to(path)
    finally:
        writer.close()


@pytest.mark.parametrize(
    "damage",
    [
        lambda d, o: d[:o] + b"JUNK" + d[o + 4 :],  # record marker
        lambda d, o: d[: o + 4] + struct.pack(">I", 7) + d[o + 8 :],  # frame number
        lambda d, o: d[: o + 8] + struct.pack(">I", 0) + d[o + 12 :],  # zero length
    ],
)
def test_corrupted_records_raise(tmp_path: Path, damage) -> None:
    path = tmp_path / "seq.vcc.partial"
    write_container(path, finish=False)
    with ContainerReader(path) as reader:
        offset = reader.entries[2].offset
    path.write_bytes(damage(path.read_bytes(), offset))
    with pytest.raises(BitstreamError):
        ContainerReader(path)


def test_garbage_and_empty_files_raise(tmp_path: Path) -> None:
    for content in (b"", b"\x89VCC", b"hello world, this is not a container at all"):
        path = tmp_path / "bad.vcc"
        path.write_bytes(content)
        with pytest.raises(BitstreamError):
            ContainerReader(path)
