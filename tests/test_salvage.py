"""Reading damaged containers: every intact frame is found, every damaged one is named, and why.

Every test runs on both container versions (1: fixed 16-byte record headers; 2: varint fields)."""

from __future__ import annotations

import struct
import time
from fractions import Fraction
from pathlib import Path

import pytest
from containers import write_container
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vcodec.bitstream.container import (
    FOOTER_BYTES,
    ContainerReader,
    SequenceHeader,
    pack_varint,
)
from vcodec.bitstream.salvage import DamagedFrame, SalvageReader
from vcodec.types import BitstreamError

HEADER = SequenceHeader(64, 48, 8, Fraction(30), settings={"preset": "fast"})
# Payloads that contain the record and index markers, as real bitstreams may: a search must not trust them.
PAYLOADS = [bytes([i]) * (40 + 9 * i) + b"VCFR\x00\x00\x00\x03VCIX" for i in range(5)]
# Where a record's fields are, and bytes that damage them, by version: (offset, bytes) of its marker, of
# a frame number of 3 or 9, and of a payload length of 7, 3 or 100 (versions 2 and 3: one-byte varints here).
FIELDS = {
    1: {"marker": (0, b"XXXX"), "number 3": (4, struct.pack(">I", 3)), "number 9": (4, struct.pack(">I", 9)),
        "length 7": (8, struct.pack(">I", 7)), "length 3": (8, struct.pack(">I", 3)),
        "length 100": (8, struct.pack(">I", 100)), "payload": 16},
    2: {"marker": (0, b"XXXX"), "number 3": (4, b"\x03"), "number 9": (4, b"\x09"), "length 7": (5, b"\x07"),
        "length 3": (5, b"\x03"), "length 100": (5, b"\x64"), "payload": 10},
}
FIELDS[3] = FIELDS[2]  # version 3 changed the file header only


@pytest.fixture(params=sorted(FIELDS), ids=lambda version: f"v{version}", autouse=True)
def version(request: pytest.FixtureRequest) -> int:
    return request.param


@pytest.fixture
def write(version: int):
    """Writes the container of PAYLOADS in the version under test; returns the offsets of its records."""
    def write_file(path: Path, finish: bool = True) -> list[int]:
        write_container(path, HEADER, PAYLOADS, finish, version)
        with ContainerReader(path) as reader:
            assert reader.version == version
            return [entry.offset for entry in reader.entries]
    return write_file


def damage(path: Path, offset: int, data: bytes) -> None:
    content = bytearray(path.read_bytes())
    content[offset : offset + len(data)] = data
    path.write_bytes(bytes(content))


def readable(reader: SalvageReader) -> dict[int, str]:
    """Each frame's payload check: 'ok' (and the right bytes), or the reason it is damaged."""
    result = {}
    for number in range(reader.frame_count):
        try:
            assert reader.read_frame(number) == PAYLOADS[number]
            result[number] = "ok"
        except DamagedFrame as error:
            assert error.number == number and f"frame {number} is damaged" in str(error)
            result[number] = error.reason
    return result


ALL_OK = {n: "ok" for n in range(5)}


def test_a_sound_file_has_no_problems(tmp_path: Path, write) -> None:
    write(tmp_path / "seq.vcc")
    with SalvageReader(tmp_path / "seq.vcc") as reader:
        assert reader.finished and reader.complete and reader.problems == [] and reader.missing == ()
        assert readable(reader) == ALL_OK


def test_a_crc_damaged_frame_is_named_and_the_others_read(tmp_path: Path, write, version: int) -> None:
    offsets = write(tmp_path / "seq.vcc")
    damage(tmp_path / "seq.vcc", offsets[2] + FIELDS[version]["payload"] + 5, b"\xff")
    with SalvageReader(tmp_path / "seq.vcc") as reader:
        assert reader.problems == []
        assert readable(reader) == ALL_OK | {2: "CRC mismatch"}


@pytest.mark.parametrize("field", ["marker", "number 3", "length 7"])
def test_a_damaged_record_header_in_an_indexed_file_names_its_frame(tmp_path: Path, write, version: int,
                                                                    field: str) -> None:
    offset, data = FIELDS[version][field]
    offsets = write(tmp_path / "seq.vcc")
    damage(tmp_path / "seq.vcc", offsets[2] + offset, data)
    with SalvageReader(tmp_path / "seq.vcc") as reader:
        assert reader.problems == []  # the index is sound: it still finds every record
        assert readable(reader) == ALL_OK | {2: "bad record header"}


@pytest.mark.parametrize("cut", [0, 7, 19])
def test_a_finished_file_cut_short_keeps_the_frames_before_the_cut(tmp_path: Path, write, cut: int) -> None:
    """The header announces 5 frames, 3 are complete: frames 3 and 4 are missing."""
    offsets = write(tmp_path / "seq.vcc")
    data = (tmp_path / "seq.vcc").read_bytes()
    (tmp_path / "seq.vcc").write_bytes(data[: offsets[3] + cut])
    with pytest.raises(BitstreamError, match="header announces 5 frames, 3 are complete"):
        ContainerReader(tmp_path / "seq.vcc")
    with SalvageReader(tmp_path / "seq.vcc") as reader:
        assert reader.finished and not reader.complete and reader.frame_count == 5
        assert reader.problems == ["the file is cut short"] and reader.missing == (3, 4)
        assert readable(reader) == ALL_OK | {3: "missing", 4: "missing"}


def test_bytes_after_the_end_are_a_problem_but_every_frame_reads(tmp_path: Path, write) -> None:
    write(tmp_path / "seq.vcc")
    with open(tmp_path / "seq.vcc", "ab") as handle:
        handle.write(b"garbage appended by a careless copy" * 3)
    with SalvageReader(tmp_path / "seq.vcc") as reader:
        assert reader.problems == ["105 unexpected bytes follow its end"] and reader.missing == ()
        assert readable(reader) == ALL_OK


def test_an_interrupted_encode_is_not_damaged(tmp_path: Path, write) -> None:
    offsets = write(tmp_path / "seq.vcc.partial", finish=False)
    data = (tmp_path / "seq.vcc.partial").read_bytes()
    (tmp_path / "seq.vcc.partial").write_bytes(data[: offsets[4] + 20])
    with SalvageReader(tmp_path / "seq.vcc.partial") as reader:
        assert not reader.finished and reader.problems == [] and reader.trailing_bytes == 20
        assert reader.frame_count == 4 and readable(reader) == {n: "ok" for n in range(4)}


@pytest.mark.parametrize(
    ("field", "reasons"),
    [("marker", {2: "missing"}), ("number 9", {2: "missing"}), ("length 3", {2: "CRC mismatch"}),
     ("length 100", {2: "CRC mismatch"})],
)
def test_a_damaged_record_header_is_stepped_over(tmp_path: Path, write, version: int, field: str,
                                                 reasons: dict[int, str]) -> None:
    """In a file without an index (interrupted, or its index lost), the records after a damaged one are
    found again by their marker and CRC."""
    offset, data = FIELDS[version][field]
    offsets = write(tmp_path / "seq.vcc.partial", finish=False)
    damage(tmp_path / "seq.vcc.partial", offsets[2] + offset, data)
    with pytest.raises(BitstreamError):
        with ContainerReader(tmp_path / "seq.vcc.partial") as reader:
            reader.read_frame(2)
    with SalvageReader(tmp_path / "seq.vcc.partial") as reader:
        assert len(reader.problems) == 1 and "are damaged" in reader.problems[0], reader.problems
        assert reader.frame_count == 5 and readable(reader) == ALL_OK | reasons


def test_a_damaged_index_is_walked_around(tmp_path: Path, write) -> None:
    write(tmp_path / "seq.vcc")
    size = (tmp_path / "seq.vcc").stat().st_size
    damage(tmp_path / "seq.vcc", size - FOOTER_BYTES - 6, b"\x55")  # inside the index, under its CRC
    with SalvageReader(tmp_path / "seq.vcc") as reader:
        assert reader.problems[0] == "its index is damaged"
        assert readable(reader) == ALL_OK


@pytest.mark.parametrize("content", [b"", b"\x89VCC", b"not a container at all, not even close"])
def test_without_a_sound_file_header_nothing_can_be_read(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad.vcc").write_bytes(content)
    with pytest.raises(BitstreamError, match="bad.vcc"):
        SalvageReader(tmp_path / "bad.vcc")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(finish=st.booleans(), edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.binary(min_size=1, max_size=12),
                                                      st.sampled_from(["write", "insert", "cut"])), max_size=4))
def test_any_damage_reads_or_fails_cleanly(tmp_path: Path, write, finish: bool,
                                           edits: list[tuple[int, bytes, str]]) -> None:
    """Whatever the damage, opening fails with BitstreamError or every frame reads or is named damaged; an
    intact frame is always the one written."""
    path = tmp_path / "fuzz.vcc"
    write(path, finish)
    data = bytearray(path.read_bytes())
    for position, chunk, kind in edits:
        at = position % (len(data) + 1)
        if kind == "write":
            data[at : at + len(chunk)] = chunk
        elif kind == "insert":
            data[at:at] = chunk
        else:
            del data[at:]
    path.write_bytes(bytes(data))
    try:
        reader = SalvageReader(path)
    except BitstreamError:
        return
    with reader:
        for number in range(reader.frame_count):
            try:
                payload = reader.read_frame(number)
            except DamagedFrame:
                continue
            assert payload == PAYLOADS[number]  # its CRC covers its number, length and bytes


def test_a_hostile_stretch_of_markers_is_searched_in_bounded_time(tmp_path: Path, write, version: int) -> None:
    """Records of 1 MB, index markers and footer magic, every 24 bytes over 3 MB: checking each
    candidate's CRC, or searching on from each index marker, would take hours. The search checks a few times the file's bytes, then gives up, and says so."""
    path = tmp_path / "seq.vcc"
    offsets = write(path, finish=False)
    content = bytearray(path.read_bytes()[: offsets[1]])
    # Frame 3's record, though frame 1 is next: only a CRC check could accept it.
    record = struct.pack(">4sIII", b"VCFR", 3, 1_000_000, 0) if version == 1 else (
        b"VCFR" + pack_varint(3) + pack_varint(1_000_000) + bytes(4))
    unit = record + b"VCIX" + b"VCCINDEX"[:4]
    content += unit * (3_000_000 // len(unit)) + b"VCCINDEX" * 1000
    path.write_bytes(bytes(content))
    started = time.perf_counter()
    with SalvageReader(path) as reader:
        assert reader.read_frame(0) == PAYLOADS[0]
        assert any("gave up" in problem for problem in reader.problems), reader.problems
    assert time.perf_counter() - started < 20  # (unbounded, this is hours)
