"""Coverage-guided fuzzing of everything that reads untrusted bytes: frame decoder, frame header, container.

    python scripts/fuzz_decoder.py --minutes 12 --target all

Three targets, each a harness below (plain functions: tests/test_fuzz.py replays inputs through them
without atheris):

- `decode`: `vcodec.decoder.decode_frame` on a frame bitstream whose header CRC and stream lengths are
  first made consistent (`repair_frame`), so that a mutated header reaches the entropy decoders and the
  synthesis instead of stopping at the CRC-16;
- `header`: `parse_header` and `read_frame_info` on the bytes as they are, then repaired;
- `container`: `ContainerReader` (what `info` and `--resume` use) and `SalvageReader` (what `decode`
  uses) over the bytes in memory: header, index or record walk, every frame; the bytes as they are,
  then with every CRC-32 recomputed (`repair_container`, by the layout of the file's container version).

A clean outcome is a decode (of the size the header announces) or a `BitstreamError`, the one error
type the decoder and the container reader raise on bad input. Anything else is a finding: another
exception, an input that takes over 10 s (libFuzzer's -timeout, wall clock), or one that needs over 2 GiB
(RLIMIT_AS in the fuzzing process, and libFuzzer's -rss_limit_mb). Each target runs in its own
subprocess under those limits for its share of --minutes; after a finding the script keeps the input as
a regression file in tests/data/fuzz/<target>/ and starts the target again for the rest of its time
(the corpus in --workdir carries over). Seeds are the frames and files of tests/golden (every frame
format version; container versions 1 to 3) and the regression files themselves. At the end it prints,
per target, the executions and the coverage libFuzzer reports (cov: edges of the instrumented vcodec
code, ft: features), and writes them to <workdir>/summary.json. docs/fuzzing.md has the figures of a run.

The decode harness decodes only frames of at most DECODE_MAX_PIXELS samples: the decoder's time and
memory follow the size the header declares (a few hundred bytes can legally announce 8192x4352), so
larger frames would measure the machine, not find bugs. Their headers are still parsed.
"""

from __future__ import annotations

import argparse
import binascii
import hashlib
import io
import json
import os
import re
import resource
import shutil
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
REGRESSIONS = ROOT / "tests" / "data" / "fuzz"
TARGETS: tuple[str, ...] = ("decode", "header", "container")

INPUT_SECONDS = 10                  # longest an input may take, wall clock
MEMORY_BYTES = 2 << 30              # address space of the fuzzing process (2 GiB)
DECODE_MAX_PIXELS = 256 * 256       # larger frames are parsed, not decoded (see the module docstring)
MAX_INPUT_BYTES = {"decode": 8192, "header": 8192, "container": 16384}  # libFuzzer -max_len
SALVAGE_FRAMES_READ = 64            # frames read per container (a salvaged count can be the header's 2^32 - 1)
_RESTART_SECONDS = 5                # less time than this left for a target: do not start it again
# libFuzzer dictionary of the container target: its markers and the JSON of the encoder settings.
CONTAINER_TOKENS: tuple[bytes, ...] = (
    b"\x89VCC\r\n\x1a\n", b"VCFR", b"VCIX", b"VCCINDEX", b'{"', b'":', b'"', b",", b"[", b"]", b"{}", b"[]",
    b"[[[[[[[[[[[[[[[[", b"null", b"true", b"1e999", b"-0", b"99999999999999999999", b"\\u0000", b"\\ud800",
    # version 2: the version field, varints at the edges of their range and spelling (u32 max, 2^32,
    # a non-minimal zero, six bytes), a record header of frame 0 with a 1-byte payload
    b"\x00\x02", b"\xff\xff\xff\xff\x0f", b"\x80\x80\x80\x80\x10", b"\x80\x00", b"\x80\x80\x80\x80\x80\x01",
    b"VCFR\x00\x01",
    # version 3: the version field, and RGB picture bytes (BT.709 full range with odd sizes; an unknown matrix)
    b"\x00\x03", b"\xd1", b"\x0f",
)


# --- Repairs: make checksums and lengths consistent, so that mutations get past them -----------------

def _header_fields(data: bytes) -> tuple[dict[str, tuple[int, int]], int] | None:
    """Bit position and width of each fixed field of a frame header, and the header's length in bytes
    without its CRC; None when byte 0 is no known version. Mirrors `parse_header`'s layout, but reads
    out-of-range list lengths as they are (the parser then refuses them)."""
    from vcodec.bitstream.frame_header import (
        ARM_WIDTH, FIXED_FIELDS_BY_VERSION, SCALE_INDEX, STEP_EXP, SUBSTREAM_WORDS, SYNTHESIS_WIDTH,
    )
    from vcodec.shapes import parameter_group_count

    if not data or data[0] not in FIXED_FIELDS_BY_VERSION:
        return None
    bits = int.from_bytes(data, "big")
    total = 8 * len(data)
    position = 8
    layout: dict[str, tuple[int, int]] = {}
    values: dict[str, int] = {}
    for header_field in FIXED_FIELDS_BY_VERSION[data[0]]:
        layout[header_field.name] = (position, header_field.bits)
        shift = total - position - header_field.bits
        values[header_field.name] = (bits >> shift) & ((1 << header_field.bits) - 1) if shift >= 0 else 0
        position += header_field.bits
    position += values["arm_layers"] * ARM_WIDTH.bits + values["synthesis_layers"] * SYNTHESIS_WIDTH.bits
    position += values["latent_levels"]
    groups = parameter_group_count(values["synthesis_layers"], values["synthesis_residual"], data[0])
    position += groups * (STEP_EXP.bits + SCALE_INDEX.bits)
    for index in range(values.get("latent_substreams", 1) - 1):  # version 4: substream sizes
        layout[f"substream_words_{index}"] = (position, SUBSTREAM_WORDS.bits)
        position += SUBSTREAM_WORDS.bits
    return layout, (position + 7) // 8


def repair_frame(data: bytes) -> bytes:
    """The frame with its stream lengths fitted to the bytes present (whole words, the parameter stream
    first) and its header CRC-16 recomputed. Idempotent; bytes whose header cannot be laid out (empty,
    unknown version, too short for the header) are returned as they are."""
    parsed = _header_fields(data)
    if parsed is None:
        return data
    layout, header_bytes = parsed
    if len(data) < header_bytes:
        return data
    header = int.from_bytes(data[:header_bytes], "big")
    body = data[header_bytes + 2 :]
    words = len(body) // 4
    body = body[: 4 * words]

    def field_value(name: str) -> int:
        position, width = layout[name]
        return (header >> (8 * header_bytes - position - width)) & ((1 << width) - 1)

    def set_field(value: int, name: str) -> None:
        nonlocal header
        position, width = layout[name]
        shift = 8 * header_bytes - position - width
        header = (header & ~(((1 << width) - 1) << shift)) | (value << shift)

    param_words = min(field_value("param_stream_words"), words)
    set_field(param_words, "param_stream_words")
    latent_words = min(words - param_words, (1 << layout["latent_stream_words"][1]) - 1)
    set_field(latent_words, "latent_stream_words")
    substreams = sorted(name for name in layout if name.startswith("substream_words_"))
    for name in sorted(substreams, key=lambda name: int(name.rsplit("_", 1)[1])):  # fitted in turn
        size = min(field_value(name), latent_words)
        set_field(size, name)
        latent_words -= size
    head = header.to_bytes(header_bytes, "big")
    return head + binascii.crc_hqx(head, 0).to_bytes(2, "big") + body


def _lenient_varint(data: bytes | bytearray, position: int) -> tuple[int, int] | None:
    """The value of the LEB128 varint at `position` and the position after it, read as the container reader
    lays it out (at most 5 bytes); None when the data ends inside it or it runs longer. Its range and its
    spelling are left to the reader to refuse: the repair only needs to know where the next field is."""
    value = 0
    for count in range(5):
        if position + count >= len(data):
            return None
        byte = data[position + count]
        value |= (byte & 0x7F) << (7 * count)
        if not byte & 0x80:
            return value, position + count + 1
    return None


def _container_header_end(data: bytes | bytearray, version: int) -> int | None:
    """Where the CRC-32 of a container's file header starts (it covers bytes 8 to there), by the layout of
    `version`; None when the bytes present do not lay it out."""
    if version == 1:  # magic, version u16, sequence header length u32, sequence header
        return 14 + int.from_bytes(data[10:14], "big") if len(data) >= 14 else None
    position = 16  # magic, version u16, width u16, height u16, bit depth u8, flags u8
    if len(data) < position:
        return None
    settings_follow = bool(data[15] & 0x80)
    picture_follows = version >= 3 and bool(data[15] & 0x40)  # version 3: the RGB picture byte
    values = []
    for count in range(4 if settings_follow else 3):  # frame count, fps numerator, denominator[, settings length]
        if count == 3 and picture_follows:
            position += 1
        varint = _lenient_varint(data, position)
        if varint is None:
            return None
        value, position = varint
        values.append(value)
    if picture_follows and not settings_follow:
        position += 1
    return position + (values[3] if settings_follow else 0)


def _record_layout(data: bytes | bytearray, offset: int, version: int) -> tuple[int, int] | None:
    """Where the CRC-32 of the frame record at `offset` is and where its payload ends; None when no record
    with a non-empty payload that fits the data starts there."""
    if data[offset : offset + 4] != b"VCFR":
        return None
    if version == 1:  # marker, number u32, length u32, CRC-32
        if offset + 16 > len(data):
            return None
        crc_at, length = offset + 12, int.from_bytes(data[offset + 8 : offset + 12], "big")
    else:  # marker, number v, length v, CRC-32
        number = _lenient_varint(data, offset + 4)
        length_field = _lenient_varint(data, number[1]) if number else None
        if length_field is None:
            return None
        length, crc_at = length_field
    end = crc_at + 4 + length
    return (crc_at, end) if 0 < length and end <= len(data) else None


def repair_container(data: bytes) -> bytes:
    """The container with the CRC-32 of its file header, of its frame records and of the index the footer
    points at recomputed (docs/container.md; versions 1 to 3, each by its own layout). The records are
    those a walk from the first finds, then, past where the walk stops, those a search for the next
    record marker finds (what `SalvageReader` resynchronises on). Anything else, and a file of another
    version (which the readers refuse before any CRC), is left as it is."""
    buffer = bytearray(data)
    version = int.from_bytes(buffer[8:10], "big") if len(buffer) >= 10 else None
    if version not in (1, 2, 3):
        return data
    header_end = _container_header_end(buffer, version)
    if header_end is None or header_end + 4 > len(buffer):
        return data
    buffer[header_end : header_end + 4] = struct.pack(">I", zlib.crc32(buffer[8:header_end]))
    offset = header_end + 4
    while 0 <= offset < len(buffer):
        record = _record_layout(buffer, offset, version)
        if record is None:
            offset = buffer.find(b"VCFR", offset + 1)  # -1 when there is none
            continue
        crc_at, end = record
        crc = zlib.crc32(buffer[crc_at + 4 : end], zlib.crc32(buffer[offset + 4 : crc_at]))
        buffer[crc_at : crc_at + 4] = struct.pack(">I", crc)
        offset = end
    if len(buffer) >= 16 and buffer[-8:] == b"VCCINDEX":
        index_offset = int.from_bytes(buffer[-16:-8], "big")
        crc_at = len(buffer) - 16 - 4
        if index_offset <= crc_at:
            buffer[crc_at : crc_at + 4] = struct.pack(">I", zlib.crc32(buffer[index_offset:crc_at]))
    return bytes(buffer)


# --- Harnesses: one input through the code under test; BitstreamError is the clean failure ---------------

def harness_decode(data: bytes) -> None:
    from vcodec.bitstream.frame_header import parse_header
    from vcodec.decoder import decode_frame

    frame = repair_frame(data)
    header, _ = parse_header(frame)
    if header.width * header.height > DECODE_MAX_PIXELS:
        return
    decoded = decode_frame(frame)
    if (decoded.width, decoded.height, decoded.bitdepth) != (header.width, header.height, header.bitdepth):
        raise AssertionError(f"decoded {decoded.width}x{decoded.height} at {decoded.bitdepth} bits, the header "
                             f"announces {header.width}x{header.height} at {header.bitdepth}")
    if max(int(plane.max()) for plane in decoded.planes()) > decoded.max_value:
        raise AssertionError("decoded samples exceed the bit depth")


def harness_header(data: bytes) -> None:
    from vcodec.bitstream.frame_info import read_frame_info
    from vcodec.types import BitstreamError

    for candidate in (data, repair_frame(data)):
        try:
            read_frame_info(candidate)  # parse_header, then the MAC count of the declared architecture
        except BitstreamError:
            pass


def _check_text(settings: object) -> None:
    """`vcodec info` prints the encoder settings: every string in them must encode as UTF-8 (JSON's
    "\\ud800" escape parses to a lone surrogate that does not)."""
    pending = [settings]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            item.encode("utf-8")
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def harness_container(data: bytes) -> None:
    from vcodec.bitstream.container import ContainerReader
    from vcodec.bitstream.salvage import SalvageReader
    from vcodec.types import BitstreamError

    for candidate in (data, repair_container(data)):
        for reader_type in (ContainerReader, SalvageReader):
            try:
                with reader_type(io.BytesIO(candidate), name="fuzz.vcc") as reader:
                    _check_text(reader.header.settings)
                    for number in range(min(reader.frame_count, SALVAGE_FRAMES_READ)):
                        try:
                            reader.read_frame(number)
                        except BitstreamError:  # SalvageReader: DamagedFrame
                            pass
            except BitstreamError:
                pass


HARNESSES = {"decode": harness_decode, "header": harness_header, "container": harness_container}


def run_input(target: str, data: bytes) -> None:
    """Run one input; returns on a clean outcome, raises whatever else happened (a finding)."""
    from vcodec.types import BitstreamError

    try:
        HARNESSES[target](data)
    except BitstreamError:
        pass


# --- Seeds from tests/golden ---------------------------------------------------------------------------

def golden_containers() -> list[Path]:
    """The frame golden files (container version 1), then the container golden files (each version)."""
    return sorted(GOLDEN.glob("v*/*.vcc")) + sorted(GOLDEN.glob("container/v*/*.vcc"))


def golden_frames() -> list[bytes]:
    """Every frame bitstream of every golden file (all frame format versions), each once."""
    from vcodec.bitstream.container import ContainerReader

    frames: dict[bytes, None] = {}
    for path in golden_containers():
        with ContainerReader(path) as reader:
            frames.update((reader.read_frame(number), None) for number in range(reader.frame_count))
    return list(frames)


def _unfinished(data: bytes) -> bytes:
    """A finished container as an interrupted encode leaves it: frame count 0, no index, a record cut short."""
    from dataclasses import replace

    from vcodec.bitstream.container import ContainerReader, pack_file_header

    with ContainerReader(io.BytesIO(data)) as reader:
        head = pack_file_header(replace(reader.header, frame_count=0), reader.version)
        last = reader.entries[-1]
        return head + data[reader.first_record : last.end] + data[last.offset : last.offset + 20]


def seeds(target: str) -> list[bytes]:
    if target == "container":
        files = [path.read_bytes() for path in golden_containers()]
        return files + [_unfinished(data) for data in files]
    return golden_frames()


# --- Running libFuzzer ---------------------------------------------------------------------------------

@dataclass
class TargetReport:
    target: str
    seconds: float = 0.0
    executions: int = 0
    seed_cov: int | None = None     # coverage of the seeds and earlier corpus (the first INITED line)
    cov: int | None = None          # at the end
    ft: int | None = None
    corpus: str | None = None       # "units/bytes" of the corpus at the end
    runs: int = 0                   # fuzzing processes started (one more after each finding)
    findings: list[dict[str, str]] = field(default_factory=list)


_STATUS = re.compile(r"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+)(?: corp: (\S+))?", re.MULTILINE)
_EXECUTED = re.compile(r"stat::number_of_executed_units: (\d+)")


def _read_log(text: str, report: TargetReport) -> None:
    statuses = _STATUS.findall(text)
    executed = [int(n) for n in _EXECUTED.findall(text)]
    report.executions += max([int(s[0]) for s in statuses] + executed + [0])
    for number, kind, cov, ft, corpus in statuses:
        if kind == "INITED" and report.seed_cov is None:
            report.seed_cov = int(cov)
    if statuses:
        _, _, cov, ft, corpus = statuses[-1]
        report.cov, report.ft = int(cov), int(ft)
        report.corpus = corpus or report.corpus


def _signature(kind: str, text: str) -> str:
    """One line naming a finding: the exception libFuzzer's run ended on, or the kind of limit it broke."""
    if kind != "crash":
        return kind
    tail = text.split("Uncaught Python exception", 1)[-1]
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    traceback_end = next((i for i, line in enumerate(lines) if line.startswith("==")), len(lines))
    return lines[traceback_end - 1] if traceback_end else "crash"


def _write_seeds(directory: Path, inputs: list[bytes]) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for data in inputs:
        (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)


def _write_dictionary(path: Path, tokens: tuple[bytes, ...]) -> None:
    path.write_text("".join('"' + "".join(f"\\x{byte:02x}" for byte in token) + '"\n' for token in tokens))


def fuzz_target(target: str, seconds: float, workdir: Path, regressions: Path) -> TargetReport:
    """Fuzz one target for `seconds`, restarting after each finding; findings go to regressions/target."""
    base = workdir / target
    corpus, seed_dir, artifacts = base / "corpus", base / "seeds", base / "artifacts"
    for directory in (corpus, artifacts):
        directory.mkdir(parents=True, exist_ok=True)
    _write_seeds(seed_dir, seeds(target))
    dictionary = base / "tokens.dict"
    if target == "container":
        _write_dictionary(dictionary, CONTAINER_TOKENS)
    kept = regressions / target
    report = TargetReport(target)
    start = time.monotonic()
    deadline = start + seconds
    seen: set[str] = set()
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    while (remaining := deadline - time.monotonic()) >= _RESTART_SECONDS:
        shutil.rmtree(artifacts)  # what is left in it now is one run's findings
        artifacts.mkdir()
        command = [
            sys.executable, str(Path(__file__).resolve()), "--child", target, "--",
            str(corpus), str(seed_dir), *([str(kept)] if kept.is_dir() else []),
            f"-max_total_time={int(remaining)}", f"-timeout={INPUT_SECONDS}",
            f"-rss_limit_mb={MEMORY_BYTES >> 20}", f"-max_len={MAX_INPUT_BYTES[target]}",
            f"-artifact_prefix={artifacts}/", "-print_final_stats=1",
            *([f"-dict={dictionary}"] if target == "container" else []),
        ]
        log_path = base / f"run{report.runs}.log"
        with open(log_path, "w") as log:
            try:
                result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        timeout=remaining + 4 * INPUT_SECONDS + 60)
                returncode = result.returncode
            except subprocess.TimeoutExpired:
                returncode = None
        report.runs += 1
        text = log_path.read_text(errors="replace")
        _read_log(text, report)
        new = sorted(artifacts.iterdir())
        if not new:
            if returncode not in (0, None):
                raise RuntimeError(f"{target}: the fuzzer exited with {returncode} and no finding; "
                                   f"see {log_path}:\n{text[-2000:]}")
            break
        stop = False
        for artifact in new:
            kind = artifact.name.split("-", 1)[0]
            signature = _signature(kind, text)
            kept.mkdir(parents=True, exist_ok=True)
            known = {hashlib.sha1(path.read_bytes()).hexdigest(): path for path in kept.iterdir()}
            destination = known.get(hashlib.sha1(artifact.read_bytes()).hexdigest(), kept / artifact.name)
            if not destination.exists():  # a regression file that still fails is not kept twice
                shutil.copyfile(artifact, destination)
            finding = {"file": str(destination.relative_to(ROOT) if destination.is_relative_to(ROOT) else destination),
                       "kind": kind, "signature": signature}
            if finding not in report.findings:
                report.findings.append(finding)
            stop |= signature in seen
            seen.add(signature)
        if stop:  # the same finding twice: fix it before fuzzing this target further
            break
    report.seconds = round(time.monotonic() - start, 1)
    return report


def _child(target: str, libfuzzer_args: list[str]) -> None:
    """The fuzzing process: limits, instrumented vcodec, then libFuzzer's loop (never returns normally)."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    import atheris

    with atheris.instrument_imports(include=["vcodec"]):
        import vcodec.bitstream.container  # noqa: F401
        import vcodec.bitstream.salvage  # noqa: F401
        import vcodec.decoder  # noqa: F401
    import torch

    torch.set_num_threads(1)
    atheris.Setup([sys.argv[0], *libfuzzer_args], lambda data: run_input(target, data))
    atheris.Fuzz()


def _print_summary(reports: list[TargetReport]) -> None:
    print(f"{'target':<10} {'seconds':>8} {'execs':>8} {'cov (seeds)':>12} {'ft':>6} {'corpus':>12} findings")
    for report in reports:
        cov = f"{report.cov} ({report.seed_cov})"
        print(f"{report.target:<10} {report.seconds:>8.0f} {report.executions:>8} {cov:>12} {report.ft!s:>6} "
              f"{report.corpus!s:>12} {len(report.findings)}")
        for finding in report.findings:
            print(f"    {finding['kind']}: {finding['signature']}  ->  {finding['file']}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        separator = argv.index("--")
        _child(argv[1], argv[separator + 1 :])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, required=True, help="total fuzzing time, shared by the targets")
    parser.add_argument("--target", choices=[*TARGETS, "all"], default="all")
    parser.add_argument("--workdir", type=Path, default=ROOT / "out" / "fuzz",
                        help="corpus, artifacts and logs (kept between runs; default out/fuzz)")
    parser.add_argument("--regressions", type=Path, default=REGRESSIONS,
                        help="where findings are kept, one folder per target (default tests/data/fuzz)")
    args = parser.parse_args(argv)
    targets = list(TARGETS) if args.target == "all" else [args.target]
    reports = [fuzz_target(target, 60 * args.minutes / len(targets), args.workdir, args.regressions)
               for target in targets]
    _print_summary(reports)
    args.workdir.mkdir(parents=True, exist_ok=True)
    (args.workdir / "summary.json").write_text(json.dumps([asdict(r) for r in reports], indent=2) + "\n")
    return 1 if any(report.findings for report in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
