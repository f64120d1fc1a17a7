"""One set of frame-size and lambda limits (vcodec.format), checked before any work is done.

The command-line cases run the real console script with the default (medium) schedule: were a check
missing, the encode would train for minutes before failing, so the time limit below is what fails.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from vcodec.bitstream.container import MAGIC, BitstreamError, SequenceHeader, pack_file_header, parse_file_header
from vcodec.cli import ExitCode
from vcodec.format import MAX_FRAME_SIDE, check_frame_size
from vcodec.io import InputError, open_video
from vcodec.io.y4m import parse_header

SCRIPT = Path(sys.executable).with_name("vcodec")
VCODEC = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "vcodec"]
FAST_FAIL_SECONDS = 15  # the console script starts in about 1 s; any training takes minutes here


def raw_clip(path: Path, width: int, height: int) -> Path:
    """One 8-bit frame of that size, as a sparse file: the bytes are never meant to be read."""
    with path.open("wb") as handle:
        handle.truncate(width * height * 3 // 2)
    return path


def run_timed(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    began = time.monotonic()
    result = subprocess.run([*VCODEC, *args], cwd=cwd, capture_output=True, timeout=120)
    return result, time.monotonic() - began


@pytest.mark.parametrize(
    ("name", "size", "limit"),
    [
        ("wide.yuv", "10240x16", "2..8192"),                     # a side beyond 8192
        ("Tall_8192x4400_30.yuv", None, "at most 35651584 (8192x4352)"),  # sides fit, samples do not
    ],
    ids=["side", "pixels"],
)
def test_oversized_input_fails_before_training(tmp_path: Path, name: str, size: str | None, limit: str) -> None:
    width, height = map(int, (size or name.split("_")[1]).split("x"))
    raw_clip(tmp_path / name, width, height)
    args = ["encode", name, "-o", "out.vcc", "--lmbda", "0.001", *(["--size", size] if size else [])]
    result, seconds = run_timed(*args, cwd=tmp_path)
    stderr = result.stderr.decode()
    assert result.returncode == ExitCode.INPUT, stderr
    assert stderr.startswith("vcodec: error: ") and stderr.count("\n") == 1, stderr
    assert f"{width}x{height}" in stderr and limit in stderr
    assert seconds < FAST_FAIL_SECONDS
    assert not (tmp_path / "out.vcc").exists() and not (tmp_path / "out.vcc.partial").exists()


@pytest.mark.parametrize("lmbda", ["2", "1", "0", "-0.001", "nan"])
def test_lambda_out_of_range_is_a_usage_error_before_training(tmp_path: Path, lmbda: str) -> None:
    raw_clip(tmp_path / "clip_64x48_30.yuv", 64, 48)
    result, seconds = run_timed("encode", "clip_64x48_30.yuv", "-o", "out.vcc", f"--lmbda={lmbda}", cwd=tmp_path)
    stderr = result.stderr.decode()
    assert result.returncode == ExitCode.USAGE, stderr
    assert stderr.startswith("vcodec: error: --lmbda") and stderr.count("\n") == 1, stderr
    assert "below 1" in stderr
    assert seconds < FAST_FAIL_SECONDS
    assert not (tmp_path / "out.vcc.partial").exists()


@pytest.mark.parametrize(
    ("width", "height", "fits"),
    [
        (2, 2, True), (7680, 4320, True), (8192, 4352, True), (MAX_FRAME_SIDE, 16, True), (16, MAX_FRAME_SIDE, True),
        (0, 16, False), (MAX_FRAME_SIDE + 2, 16, False), (16, MAX_FRAME_SIDE + 2, False), (8192, 4354, False),
        (8192, 8192, False), (64, 47, False),
    ],
)  # fmt: skip
def test_one_check_of_frame_sizes(width: int, height: int, fits: bool) -> None:
    for error in (InputError, BitstreamError):
        if fits:
            check_frame_size(width, height, error)
        else:
            with pytest.raises(error, match=f"frame size {width}x{height}"):
                check_frame_size(width, height, error)


def test_every_reader_uses_the_limits(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="2..8192"):
        parse_header(b"YUV4MPEG2 W10240 H16 F25:1 C420jpeg\n")
    with pytest.raises(InputError, match="35651584"):
        parse_header(b"YUV4MPEG2 W8192 H4400 F25:1 C420jpeg\n")
    with pytest.raises(InputError, match="2..8192"):
        open_video(str(raw_clip(tmp_path / "wide.yuv", 10240, 16)), size=(10240, 16))
    with pytest.raises(InputError, match="35651584"):
        open_video(str(raw_clip(tmp_path / "Tall_8192x4400_30.yuv", 8192, 4400)))


def sequence_header_bytes(width: int, height: int) -> bytes:
    """A file header laid out by hand from docs/container.md, so that no size check stands in the way."""
    body = struct.pack(">HHBBIIIH", width, height, 8, 0, 25, 1, 0, 2) + b"{}"
    version_and_length = struct.pack(">HI", 1, len(body))
    crc = zlib.crc32(body, zlib.crc32(version_and_length))
    return MAGIC + version_and_length + body + struct.pack(">I", crc)


def test_container_refuses_a_size_no_frame_can_have() -> None:
    fitting = sequence_header_bytes(8192, 4352)
    assert fitting == pack_file_header(SequenceHeader(8192, 4352, 8, 25), version=1)  # the hand layout is v1's
    assert (parse_file_header(fitting).width, parse_file_header(fitting).height) == (8192, 4352)
    for width, height in [(10240, 16), (8192, 4400), (65534, 2)]:
        with pytest.raises(BitstreamError, match=f"{width}x{height}"):
            parse_file_header(sequence_header_bytes(width, height))
        with pytest.raises(BitstreamError, match=f"{width}x{height}"):
            SequenceHeader(width, height, 8, 25)
