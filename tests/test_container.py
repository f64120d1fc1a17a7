"""The .vcc container: layout, random access, and what happens to damaged or cut-short files.

The version 2 and 3 layouts are written out below as data (V2_HEADER, V3_HEADER, V2_RECORD), not read from
the code under test, so that a change to the writer cannot change what the tests expect of the bytes."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
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
from vcodec.bitstream.salvage import SalvageReader
from vcodec.types import COLOR_MATRICES, COLOR_RANGES, BitstreamError, ColorConversion, RgbPicture

HEADER = SequenceHeader(416, 240, 10, Fraction(30000, 1001), settings={"preset": "fast", "lmbda": 0.001})
PAYLOADS = [bytes([i]) * (10 + 7 * i) for i in range(5)]


def write_container(path: Path, payloads: list[bytes] = PAYLOADS, finish: bool = True) -> None:
    containers.write_container(path, HEADER, payloads, finish)


# Frozen version 2 layouts: (field, width) in stored order; a width is a byte count, "v" an unsigned
# LEB128 varint (7 bits a byte, low group first), "S" the settings length's bytes. Flags: bits 0-3 the
# chroma index, bit 7 settings follow. The CRC-32 covers the bytes from the version to before it.
V2_HEADER: tuple[tuple[str, int | str], ...] = (
    ("magic", 8), ("version", 2), ("width", 2), ("height", 2), ("bitdepth", 1), ("flags", 1),
    ("frame_count", "v"), ("fps_num", "v"), ("fps_den", "v"), ("settings_length", "v if flags bit 7"),
    ("settings", "S"), ("crc32", 4),
)
# Version 3: version 2 with flags bit 6, "an RGB picture byte follows", and that byte after the frame rate:
# bits 0-3 the matrix index, bits 4-5 the range index, bit 6 odd width (the picture is one column narrower
# than the frame), bit 7 odd height. Its records, index and footer are version 2's.
V3_HEADER: tuple[tuple[str, int | str], ...] = (
    ("magic", 8), ("version", 2), ("width", 2), ("height", 2), ("bitdepth", 1), ("flags", 1),
    ("frame_count", "v"), ("fps_num", "v"), ("fps_den", "v"), ("rgb_picture", "1 if flags bit 6"),
    ("settings_length", "v if flags bit 7"), ("settings", "S"), ("crc32", 4),
)
FROZEN_HEADERS = {2: V2_HEADER, 3: V3_HEADER}
V2_RECORD: tuple[tuple[str, int | str], ...] = (
    ("marker", 4), ("frame_number", "v"), ("payload_length", "v"), ("crc32", 4), ("payload", "payload_length"),
)
ONE_FRAME_OVERHEAD_LIMIT = 40  # bytes of container around the frame bitstream of a one-frame file


def read_frozen(data: bytes, layout: tuple[tuple[str, int | str], ...], position: int = 0) -> tuple[dict, int]:
    """The fields of `layout` from `data`, read by an independent reader; and the position after them."""
    fields: dict[str, int | bytes] = {}
    for name, width in layout:
        if name == "settings_length" and not fields["flags"] & 0x80:
            fields[name] = 0
        elif name == "rgb_picture":
            fields[name] = data[position] if fields["flags"] & 0x40 else None
            position += fields["flags"] & 0x40 and 1
        elif width == "v" or str(width).startswith("v "):
            value = shift = 0
            while True:
                byte = data[position]
                position += 1
                value |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            fields[name] = value
        else:
            size = width if isinstance(width, int) else fields[{"S": "settings_length"}.get(width, width)]
            raw = data[position : position + size]
            fields[name] = raw if name in ("magic", "marker", "settings", "payload") else int.from_bytes(raw, "big")
            position += size
    return fields, position


def test_frozen_enums_and_constants() -> None:
    # Stored in files: changing any of these makes existing containers unreadable.
    assert CHROMA_FORMATS == ("420",)
    assert MAGIC == b"\x89VCC\r\n\x1a\n"
    assert FORMAT_VERSION == 3
    assert COLOR_MATRICES == ("bt601", "bt709") and COLOR_RANGES == ("limited", "full")
    assert RECORD_HEADER_BYTES == 16 and FOOTER_BYTES == 16  # version 1 records; the footer of both


PICTURES = {  # an RGB picture of a 416x240 frame, and its picture byte in the frozen layout
    "yuv": (None, None),
    "bt601-full": (RgbPicture(ColorConversion("bt601", "full"), 416, 240), 0x10),
    "bt709-limited-odd-width": (RgbPicture(ColorConversion("bt709", "limited"), 415, 240), 0x41),
    "bt709-full-odd-both": (RgbPicture(ColorConversion("bt709", "full"), 415, 239), 0xD1),
}


@pytest.mark.parametrize("picture", PICTURES)
@pytest.mark.parametrize("settings", [{}, {"preset": "fast", "lmbda": 0.001}], ids=["lean", "settings"])
def test_header_follows_the_frozen_layout(settings: dict, picture: str) -> None:
    rgb, stored = PICTURES[picture]
    header = SequenceHeader(416, 240, 10, Fraction(30000, 1001), frame_count=300, settings=settings, picture=rgb)
    data = pack_file_header(header)
    fields, end = read_frozen(data, V3_HEADER)
    assert end == len(data)
    assert fields["magic"] == MAGIC and fields["version"] == 3
    assert (fields["width"], fields["height"], fields["bitdepth"]) == (416, 240, 10)
    assert fields["flags"] == (0x80 if settings else 0) | (0x40 if rgb else 0)  # chroma index 0 (4:2:0)
    assert fields["rgb_picture"] == stored
    assert (fields["frame_count"], fields["fps_num"], fields["fps_den"]) == (300, 30000, 1001)
    assert fields["settings"] == (b'{"lmbda":0.001,"preset":"fast"}' if settings else b"")
    assert fields["crc32"] == zlib.crc32(data[8:-4])
    assert parse_file_header(data) == header


def test_record_follows_the_frozen_layout() -> None:
    payload = bytes(range(256)) * 3
    data = pack_frame_record(130, payload)
    fields, end = read_frozen(data, V2_RECORD)
    assert end == len(data) and fields["marker"] == b"VCFR" and fields["payload"] == payload
    assert (fields["frame_number"], fields["payload_length"]) == (130, 768)
    assert data[4:8] == bytes([0x82, 0x01, 0x80, 0x06])  # 130 and 768 as varints
    assert fields["crc32"] == zlib.crc32(data[4:8] + payload)


@pytest.mark.parametrize("picture", [None, RgbPicture(ColorConversion("bt709", "limited"), 1919, 1079)],
                         ids=["yuv", "rgb-picture"])
def test_one_frame_file_overhead(tmp_path: Path, picture: RgbPicture | None) -> None:
    """A one-frame file: header, one record, no index; its settings only when kept; the RGB picture byte of
    a picture's file within the same limit."""
    payload = bytes(range(256)) * 80  # 20 KB: a 3-byte length
    header = SequenceHeader(1920, 1080, 10, Fraction(30000, 1001), settings={"preset": "fast"}, picture=picture)
    for keep, limit in ((False, ONE_FRAME_OVERHEAD_LIMIT), (True, ONE_FRAME_OVERHEAD_LIMIT + 30)):
        path = tmp_path / f"one_{keep}.vcc"
        writer = ContainerWriter.create(path, header)
        writer.append(payload)
        writer.finish(keep_settings=keep)
        writer.close()
        data = path.read_bytes()
        assert len(data) - len(payload) <= limit, len(data) - len(payload)
        fields, end = read_frozen(data, V3_HEADER)
        record, end = read_frozen(data, V2_RECORD, end)
        assert end == len(data) and record["payload"] == payload and fields["frame_count"] == 1
        with ContainerReader(path) as reader:
            assert reader.complete and not reader.indexed and reader.read_frame(0) == payload
            assert reader.header.settings == ({"preset": "fast"} if keep else {})
            assert reader.header.picture == picture


def test_header_round_trip_and_layout() -> None:
    data = pack_file_header(HEADER, version=1)
    assert data[:8] == MAGIC
    assert struct.unpack(">H", data[8:10]) == (1,)
    width, height, depth, chroma, num, den, count = struct.unpack(">HHBBIII", data[14:32])
    assert (width, height, depth, chroma, num, den, count) == (416, 240, 10, 0, 30000, 1001, 0)
    assert parse_file_header(data) == HEADER
    assert parse_file_header(pack_file_header(HEADER)) == HEADER


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
    future[9] = 4
    with pytest.raises(BitstreamError, match="version 4 is not supported"):
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
    data[entry.payload_offset] ^= 0xFF  # damage frame 1 only
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
        lambda d, o: d[: o + 4] + b"\x07" + d[o + 5 :],  # frame number
        lambda d, o: d[: o + 5] + b"\x00" + d[o + 6 :],  # zero length
        lambda d, o: d[: o + 4] + b"\x82\x00" + d[o + 6 :],  # a varint with a needless zero group
    ],
    ids=["marker", "number", "length", "varint"],
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


@pytest.mark.parametrize("finish", [True, False], ids=["finished", "unfinished"])
def test_version_1_files_still_read(tmp_path: Path, finish: bool) -> None:
    path = tmp_path / "old.vcc"
    containers.write_container(path, HEADER, PAYLOADS, finish, version=1)
    for reader_type in (ContainerReader, SalvageReader):
        with reader_type(path) as reader:
            assert reader.version == 1 and reader.header.settings == HEADER.settings
            assert [reader.read_frame(i) for i in range(len(PAYLOADS))] == PAYLOADS


def test_an_unfinished_version_1_file_resumes_and_finishes_as_version_2(tmp_path: Path) -> None:
    path = tmp_path / "old.vcc.partial"
    containers.write_container(path, HEADER, PAYLOADS[:2], finish=False, version=1)
    writer = ContainerWriter.append_to(path)
    assert writer.version == 1 and writer.frame_count == 2
    for payload in PAYLOADS[2:]:
        writer.append(payload)
    with ContainerReader(path) as reader:  # appended in the file's own layout
        assert reader.version == 1 and reader.frame_count == len(PAYLOADS)
    writer.finish()
    writer.close()
    reference = tmp_path / "ref.vcc"
    write_container(reference)
    assert path.read_bytes() == reference.read_bytes()


def test_finish_drops_the_settings_only_when_asked_and_leaves_no_staging_file(tmp_path: Path) -> None:
    path = tmp_path / "seq.vcc.partial"
    write_container(path, finish=False)
    with ContainerReader(path) as reader:
        assert reader.header.settings == HEADER.settings  # an unfinished file always holds them
    writer = ContainerWriter.append_to(path)
    writer.finish(keep_settings=False)
    writer.close()
    with ContainerReader(path) as reader:
        assert reader.complete and reader.indexed and reader.header.settings == {}
        assert [reader.read_frame(i) for i in range(len(PAYLOADS))] == PAYLOADS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seq.vcc.partial"]


def test_a_one_frame_file_with_bytes_after_its_record_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "one.vcc"
    containers.write_container(path, HEADER, PAYLOADS[:1])
    with open(path, "ab") as handle:
        handle.write(b"VC")
    with pytest.raises(BitstreamError, match="2 bytes follow its last frame"):
        ContainerReader(path)
    with SalvageReader(path) as reader:
        assert reader.read_frame(0) == PAYLOADS[0] and reader.problems


GOLDEN_CONTAINERS = Path(__file__).parent / "golden" / "container"


def golden_container_cases() -> list[tuple[int, str]]:
    return [(int(folder.name[1:]), name) for folder in sorted(GOLDEN_CONTAINERS.glob("v*"))
            for name in json.loads((folder / "manifest.json").read_text())]


def test_current_container_version_has_golden_files() -> None:
    assert (FORMAT_VERSION, "one_frame_lean") in golden_container_cases()


@pytest.mark.parametrize(("version", "name"), golden_container_cases())
def test_golden_container_reads_and_follows_the_frozen_layout(version: int, name: str) -> None:
    """Files written by each container version's writer: read strictly and by salvage, frames unchanged (they
    are the frame golden files', whose decode tests/test_golden.py pins), header as the frozen layout says."""
    folder = GOLDEN_CONTAINERS / f"v{version}"
    expected = json.loads((folder / "manifest.json").read_text())[name]
    data = (folder / f"{name}.vcc").read_bytes()
    assert len(data) == expected["file_bytes"]
    frame_golden = Path(__file__).parent / "golden" / f"{expected['source']}.vcc"
    with ContainerReader(frame_golden) as source:
        source_frames = [source.read_frame(n) for n in range(source.frame_count)]
    for reader_type in (ContainerReader, SalvageReader):
        with reader_type(folder / f"{name}.vcc") as reader:
            assert reader.version == version and reader.complete == expected["finished"]
            frames = [reader.read_frame(n) for n in range(reader.frame_count)]
            assert not getattr(reader, "problems", [])
        assert [hashlib.sha256(f).hexdigest() for f in frames] == expected["frame_sha256"]
        assert frames == source_frames
    if version in FROZEN_HEADERS:
        fields, position = read_frozen(data, FROZEN_HEADERS[version])
        assert (fields["width"], fields["height"], fields["bitdepth"]) == (expected["width"], expected["height"],
                                                                          expected["bitdepth"])
        assert f"{fields['fps_num']}/{fields['fps_den']}" == expected["fps"]
        assert fields["frame_count"] == (len(frames) if expected["finished"] else 0)
        assert json.loads(fields["settings"] or b"{}") == expected["settings"]
        assert fields.get("rgb_picture") == expected.get("rgb_picture")
        assert reader.header.picture == (RgbPicture(ColorConversion(*expected["conversion"]), *expected["picture_size"])
                                         if "conversion" in expected else None)
        for number, frame in enumerate(frames):
            record, position = read_frozen(data, V2_RECORD, position)
            assert (record["frame_number"], record["payload"]) == (number, frame)
        if len(frames) == 1 and expected["finished"]:
            assert position == len(data) and len(data) - len(frames[0]) <= ONE_FRAME_OVERHEAD_LIMIT


def v2_header(rest: bytes, flags: int = 0) -> bytes:
    """A version 2 header of 64x48 8-bit with a correct CRC: `rest` is what follows the flags."""
    checked = struct.pack(">HHHBB", 2, 64, 48, 8, flags) + rest
    return MAGIC + checked + struct.pack(">I", zlib.crc32(checked))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (v2_header(b"\x00\x19\x01", 0x10), "reserved bits"),
        (v2_header(b"\x00\x19\x01\x00", 0x80), "not valid JSON"),
        (v2_header(b"\x00\x19\x01\xff\xff\xff\xff\x0f", 0x80), "settings length 4294967295 is out of range"),
        (v2_header(b"\x80\x00\x19\x01"), "frame count is not minimally encoded"),
        (v2_header(b"\xff\xff\xff\xff\xff\x01\x19\x01"), "frame count runs past 5 bytes"),
        (v2_header(b"\x00\x00\x01"), "frame rate 0/1"),
        (v2_header(b"\x00\x19\x01")[:20], "truncated inside its sequence header"),
    ],
    ids=["flags", "empty settings", "settings length", "non-minimal varint", "long varint", "frame rate", "cut"],
)
def test_a_bad_version_2_header_is_one_bitstream_error(data: bytes, message: str) -> None:
    for reader_type in (ContainerReader, SalvageReader):
        with pytest.raises(BitstreamError, match=message):
            reader_type(io.BytesIO(data), name="bad.vcc")


def v3_header(rest: bytes, flags: int = 0) -> bytes:
    """A version 3 header of 64x48 8-bit with a correct CRC: `rest` is what follows the flags."""
    checked = struct.pack(">HHHBB", 3, 64, 48, 8, flags) + rest
    return MAGIC + checked + struct.pack(">I", zlib.crc32(checked))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (v2_header(b"\x00\x19\x01", 0x40), "reserved bits"),  # version 2 knows no RGB picture
        (v3_header(b"\x00\x19\x01", 0x20), "reserved bits"),
        (v3_header(b"\x00\x19\x01\x12", 0x40), "unknown colour matrix index 2"),
        (v3_header(b"\x00\x19\x01\x20", 0x40), "unknown colour range index 2"),
        (v3_header(b"\x00\x19\x01", 0x40)[:-4], "truncated inside its sequence header"),
    ],
    ids=["v2 picture flag", "v3 reserved flag", "matrix", "range", "cut before the picture byte"],
)
def test_a_bad_version_3_header_is_one_bitstream_error(data: bytes, message: str) -> None:
    for reader_type in (ContainerReader, SalvageReader):
        with pytest.raises(BitstreamError, match=message):
            reader_type(io.BytesIO(data), name="bad.vcc")


def test_version_3_picture_byte_reads_back() -> None:
    header = parse_file_header(v3_header(b"\x00\x19\x01\xd1", 0x40))  # bt709, full, odd width and height
    assert header.picture == RgbPicture(ColorConversion("bt709", "full"), 63, 47)
    assert pack_file_header(header) == v3_header(b"\x00\x19\x01\xd1", 0x40)


def test_version_2_cannot_describe_a_picture() -> None:
    header = SequenceHeader(64, 48, 8, Fraction(25), picture=RgbPicture(ColorConversion(), 64, 48))
    with pytest.raises(BitstreamError, match="version 2 cannot describe an RGB picture"):
        pack_file_header(header, version=2)
