"""What the fuzzer found stays fixed, and seeded mutations of real frames fail cleanly.

Every file under tests/data/fuzz/<target>/ is an input that once broke the harness of <target> in
scripts/fuzz_decoder.py; each is replayed through that same harness (no atheris needed). The rule is the
fuzzer's: a decode or a BitstreamError, within 10 s. Mutated golden frames of every format version are
decoded as they are and, with their header CRC and stream lengths made consistent, deep inside; mutated
golden containers of every container version are read as they are and with their CRC-32s recomputed.
"""

from __future__ import annotations

import importlib.util
import io
import json
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from vcodec.bitstream.container import FOOTER_BYTES, ContainerReader, container_version
from vcodec.bitstream.frame_header import parse_header
from vcodec.bitstream.salvage import SalvageReader
from vcodec.decoder import decode_frame
from vcodec.types import BitstreamError

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "fuzz_decoder.py"
REGRESSION_FILES = sorted(path for path in (ROOT / "tests" / "data" / "fuzz").glob("*/*") if path.is_file())


def _load_script():
    spec = importlib.util.spec_from_file_location("fuzz_decoder", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


fuzz = _load_script()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """As the fuzzer decodes: a 96x64 frame decodes ~10x faster on one thread than on two busy ones."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def assert_clean(run: Callable[[], object], what: str) -> None:
    """The fuzzer's rule: returns or raises BitstreamError (with a message), within INPUT_SECONDS."""
    start = time.monotonic()
    try:
        run()
    except BitstreamError as error:
        assert str(error), what
    elapsed = time.monotonic() - start
    assert elapsed <= fuzz.INPUT_SECONDS, f"{what} took {elapsed:.1f} s"


@pytest.mark.parametrize("path", REGRESSION_FILES, ids=lambda p: f"{p.parent.name}/{p.name[:20]}")
def test_regression_file_is_clean(path: Path) -> None:
    assert path.parent.name in fuzz.TARGETS, f"{path}: tests/data/fuzz/<target>/ names a harness"
    data = path.read_bytes()
    assert_clean(lambda: fuzz.run_input(path.parent.name, data), str(path))


@pytest.fixture(scope="module")
def golden_frames() -> dict[int, list[bytes]]:
    """Frame bitstreams by frame format version (byte 0)."""
    frames: dict[int, list[bytes]] = {}
    for frame in fuzz.golden_frames():
        frames.setdefault(frame[0], []).append(frame)
    return frames


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to four bit flips, truncations or byte insertions."""
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buffer:
            break
        kind = rng.choice(("flip", "flip", "truncate", "insert"))
        index = rng.randrange(len(buffer))
        if kind == "flip":
            buffer[index] ^= 1 << rng.randrange(8)
        elif kind == "truncate":
            del buffer[index:]
        else:
            buffer.insert(index, rng.randrange(256))
    return bytes(buffer)


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5])
def test_seeded_mutations_of_golden_frames_fail_cleanly(golden_frames: dict[int, list[bytes]],
                                                       version: int) -> None:
    rng = random.Random(20260 + version)
    frames = golden_frames[version]
    assert frames
    for trial in range(150):
        mutated = mutate(rng.choice(frames), rng)
        what = f"v{version} mutation {trial}"
        assert_clean(lambda: decode_frame(mutated), what)
        if fuzz.repair_frame(mutated) != mutated:  # a header mutation: past the CRC, into the streams
            assert_clean(lambda: fuzz.run_input("decode", mutated), what + " (repaired)")


def test_repairs_leave_well_formed_inputs_alone(golden_frames: dict[int, list[bytes]]) -> None:
    for frame in (frame for frames in golden_frames.values() for frame in frames):
        assert fuzz.repair_frame(frame) == frame
    for data in fuzz.seeds("container"):
        assert fuzz.repair_container(data) == data


def test_repair_frame_gets_a_damaged_header_past_its_crc(golden_frames: dict[int, list[bytes]]) -> None:
    frame = bytearray(golden_frames[3][0])
    _, offset = parse_header(bytes(frame))
    frame[offset - 3] ^= 0x01  # the last header byte before the CRC-16, which no longer matches
    with pytest.raises(BitstreamError, match="checksum"):
        parse_header(bytes(frame))
    del frame[-3:]  # and the streams no longer end where the header says
    repaired = fuzz.repair_frame(bytes(frame))
    header, offset = parse_header(repaired)
    assert offset + header.param_stream_bytes + header.latent_stream_bytes == len(repaired)
    assert fuzz.repair_frame(repaired) == repaired


def golden_container(version: int) -> Path:
    """A finished golden file of two frames in container `version`: a header, two records and an index."""
    path = {1: ROOT / "tests" / "golden" / "v3" / "light_8bit_2f.vcc",
            2: ROOT / "tests" / "golden" / "container" / "v2" / "two_frames_settings.vcc",
            3: ROOT / "tests" / "golden" / "container" / "v3" / "two_frames_settings.vcc"}[version]
    assert path in fuzz.golden_containers()
    return path


def crc_positions(data: bytes) -> list[int]:
    """Where the file header's, each record's and the index's CRC-32 are, as the reader finds them."""
    with ContainerReader(io.BytesIO(data)) as reader:
        assert reader.indexed
        return [reader.first_record - 4, *(entry.payload_offset - 4 for entry in reader.entries),
                len(data) - FOOTER_BYTES - 4]


@pytest.mark.parametrize("version", [1, 2, 3])
def test_repair_container_recomputes_every_crc(version: int) -> None:
    data = golden_container(version).read_bytes()
    for position in crc_positions(data):
        damaged = bytearray(data)
        damaged[position : position + 4] = bytes(4)
        with pytest.raises(BitstreamError, match="CRC"):
            with ContainerReader(io.BytesIO(bytes(damaged))) as reader:
                for number in range(reader.frame_count):
                    reader.read_frame(number)
        assert fuzz.repair_container(bytes(damaged)) == data, f"CRC at byte {position}"


@pytest.mark.parametrize("version", [1, 2, 3])
def test_repair_container_gets_a_damaged_payload_past_its_crc(version: int) -> None:
    data = bytearray(golden_container(version).read_bytes())
    with ContainerReader(io.BytesIO(bytes(data))) as reader:
        entry = reader.entries[0]
    data[entry.payload_offset] ^= 0xFF  # its record CRC fails
    with ContainerReader(io.BytesIO(bytes(data))) as reader, pytest.raises(BitstreamError, match="CRC"):
        reader.read_frame(0)
    with ContainerReader(io.BytesIO(fuzz.repair_container(bytes(data)))) as reader:
        assert reader.read_frame(0)[0] == data[entry.payload_offset]


def test_repair_container_gets_a_damaged_version_2_header_to_its_field_checks() -> None:
    data = bytearray(golden_container(2).read_bytes())
    data[15] |= 0x10  # flags: a reserved bit, which the reader checks after the header CRC
    for reader_type in (ContainerReader, SalvageReader):
        with pytest.raises(BitstreamError, match="CRC mismatch"):
            reader_type(io.BytesIO(bytes(data)))
        with pytest.raises(BitstreamError, match="reserved bits"):
            reader_type(io.BytesIO(fuzz.repair_container(bytes(data))))


@pytest.mark.parametrize(("flags", "picture", "message"), [
    (0x20, None, "reserved bits"), (None, 0x0F, "unknown colour matrix index 15"),
    (None, 0x30, "unknown colour range index 3"),
])
def test_repair_container_gets_a_damaged_version_3_header_to_its_field_checks(
        flags: int | None, picture: int | None, message: str) -> None:
    """The RGB picture byte of version 3 (after the frame rate, before the settings) is inside the header
    CRC that the repair recomputes, so damage to it reaches the check of its matrix and range."""
    data = bytearray((ROOT / "tests" / "golden" / "container" / "v3" / "one_frame_rgb_picture.vcc").read_bytes())
    assert data[15] & 0x40 and data[16:19] == b"\x01\x19\x01"  # picture flag; 1 frame at 25/1 fps
    if flags is not None:
        data[15] |= flags
    if picture is not None:
        data[19] = picture
    for reader_type in (ContainerReader, SalvageReader):
        with pytest.raises(BitstreamError, match="CRC mismatch"):
            reader_type(io.BytesIO(bytes(data)))
        with pytest.raises(BitstreamError, match=message):
            reader_type(io.BytesIO(fuzz.repair_container(bytes(data))))


@pytest.mark.parametrize("version", [1, 2, 3])
def test_repair_container_reaches_records_past_damage(version: int) -> None:
    """After a damaged stretch the salvage reader resynchronises on the next record whose CRC holds: the
    repair recomputes the CRCs of the records a search finds past where the walk stopped, too."""
    data = bytearray(golden_container(version).read_bytes())
    with ContainerReader(io.BytesIO(bytes(data))) as reader:
        first, second = reader.entries
    data[first.offset : first.offset + 4] = b"XXXX"  # the walk stops at frame 0
    data[second.payload_offset] ^= 0xFF  # and frame 1's CRC fails
    with SalvageReader(io.BytesIO(fuzz.repair_container(bytes(data)))) as reader:
        assert reader.read_frame(1)[0] == data[second.payload_offset]


@pytest.mark.parametrize("version", [1, 2, 3])
def test_seeded_mutations_of_golden_containers_fail_cleanly(version: int) -> None:
    """Mutations of the golden files of each container version, through the container harness (as they
    are, and with their CRCs recomputed, so that damage to a field reaches the check of that field)."""
    files = [path.read_bytes() for path in fuzz.golden_containers()
             if container_version(path.read_bytes()) == version]
    assert files
    rng = random.Random(20270 + version)
    repaired = 0
    for trial in range(150):
        mutated = mutate(rng.choice(files), rng)
        repaired += fuzz.repair_container(mutated) != mutated
        assert_clean(lambda: fuzz.run_input("container", mutated), f"container v{version} mutation {trial}")
    assert repaired > 50  # most mutations are inside a CRC's reach


@pytest.mark.parametrize("version", [1, 2, 3])
def test_unfinished_seed_reads_as_an_interrupted_encode(version: int) -> None:
    files = fuzz.golden_containers()
    number = next(n for n, path in enumerate(files) if container_version(path.read_bytes()) == version)
    with ContainerReader(files[number]) as reader:
        count = reader.frame_count
    with ContainerReader(io.BytesIO(fuzz.seeds("container")[len(files) + number])) as reader:
        assert reader.version == version
        assert not reader.complete and reader.frame_count == count and reader.trailing_bytes == 20


@pytest.mark.slow
def test_fuzz_script_runs_and_reports(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    result = subprocess.run([sys.executable, str(SCRIPT), "--minutes", "0.2", "--target", "header",
                             "--workdir", str(tmp_path / "work"), "--regressions", str(tmp_path / "found")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (report,) = json.loads((tmp_path / "work" / "summary.json").read_text())
    assert report["target"] == "header" and report["executions"] > 0 and report["cov"] > 0
    assert "execs" in result.stdout


def test_repair_container_finds_the_crc_of_a_version_3_header_with_picture_and_settings() -> None:
    from fractions import Fraction

    from vcodec.bitstream.container import SequenceHeader, pack_file_header
    from vcodec.types import ColorConversion, RgbPicture

    picture = RgbPicture(ColorConversion("bt709", "full"), 63, 48)
    data = pack_file_header(SequenceHeader(64, 48, 8, Fraction(25), settings={"a": 1}, picture=picture))
    damaged = data[:-4] + bytes(4)
    assert fuzz.repair_container(damaged) == data
