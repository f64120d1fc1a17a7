"""The shell scripts in scripts/, run as a user would, on tiny clips with few iterations."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vcodec.bitstream.container import ContainerReader

# Shell wrappers over the command line (tested in test_cli.py), on streams coded at two rate points.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).with_name("vcodec")
VCODEC = str(SCRIPT) if SCRIPT.exists() else f"{sys.executable} -m vcodec"


def run(*command: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, VCODEC=VCODEC, **env)
    result = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    return result


@pytest.fixture(scope="module")
def coded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two sequences (raw 8-bit with a CTC name, y4m 10-bit) coded at two rate points by encode_ctc.sh."""
    work = tmp_path_factory.mktemp("scripts")
    (work / "src").mkdir()
    run(VCODEC, "sample", "-o", "src/Rocket_64x48_25.yuv", "--size", "64x48", "--frames", "2", "--photo", "rocket",
        "-q", cwd=work)  # fmt: skip
    run(VCODEC, "sample", "-o", "src/Coffee.y4m", "--size", "64x48", "--frames", "1", "--bitdepth", "10",
        "--photo", "coffee", "-q", cwd=work)  # fmt: skip
    run("bash", str(ROOT / "scripts/encode_ctc.sh"), "src", "out", "r1", "r4", cwd=work,
        PRESET="fast", VCODEC_ARGS="--iterations 20 --threads 1")  # fmt: skip
    return work


def test_encode_ctc_codes_every_sequence_at_every_rate(coded: Path) -> None:
    out = coded / "out"
    streams = sorted(p.name for p in out.glob("*.vcc"))
    assert streams == ["Coffee_r1.vcc", "Coffee_r4.vcc", "Rocket_64x48_25_r1.vcc", "Rocket_64x48_25_r4.vcc"]
    with ContainerReader(out / "Rocket_64x48_25_r4.vcc") as reader:
        assert reader.frame_count == 2 and reader.header.fps == 25 and reader.header.settings["lmbda"] == 0.0001
    with ContainerReader(out / "Coffee_r1.vcc") as reader:
        assert reader.header.bitdepth == 10 and reader.header.settings["rate"] == "r1"
    with open(out / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted((r["sequence"], r["rate"], r["frames"]) for r in rows) == [
        ("Coffee", "r1", "1"), ("Coffee", "r4", "1"), ("Rocket_64x48_25", "r1", "2"), ("Rocket_64x48_25", "r4", "2"),
    ]  # fmt: skip
    assert all(float(r["bpp"]) > 0 and float(r["psnr_yuv"]) > 0 for r in rows)


def test_encode_ctc_rerun_keeps_finished_streams(coded: Path) -> None:
    before = (coded / "out/Coffee_r1.vcc").stat().st_mtime_ns
    result = run("bash", str(ROOT / "scripts/encode_ctc.sh"), "src", "out", "r1", cwd=coded,
                 PRESET="fast", VCODEC_ARGS="--iterations 20 --threads 1")  # fmt: skip
    assert result.stderr.decode().count("already complete") == 2
    assert (coded / "out/Coffee_r1.vcc").stat().st_mtime_ns == before


def test_decode_compare_through_a_pipe(coded: Path) -> None:
    result = run("bash", str(ROOT / "scripts/decode_compare.sh"), "out/Rocket_64x48_25_r4.vcc",
                 "src/Rocket_64x48_25.yuv", cwd=coded)  # fmt: skip
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith("frame 0: PSNR Y") and lines[-1].startswith("mean of 2 frames")
    one = run("bash", str(ROOT / "scripts/decode_compare.sh"), "out/Rocket_64x48_25_r4.vcc",
              "src/Rocket_64x48_25.yuv", "1:2", cwd=coded)  # fmt: skip
    assert one.stdout.decode().splitlines()[0].split(": ", 1)[1] == lines[1].split(": ", 1)[1]
    ten_bit = run("bash", str(ROOT / "scripts/decode_compare.sh"), "out/Coffee_r1.vcc", "src/Coffee.y4m", cwd=coded)
    assert "mean of 1 frames" in ten_bit.stdout.decode()
