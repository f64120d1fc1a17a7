"""Start-up: `vcodec info`, `decode` and `--version` load only what they use (issue 11: the evaluation
stack alone took 1.3 s of every command). Each runs in a fresh interpreter that reports its modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden" / "v3"
EVALUATION_MODULES = ("vcodec.eval.cli", "vcodec.eval.bdrate", "bjontegaard", "matplotlib", "scipy")


def _modules_after(args: list[str]) -> tuple[int, set[str]]:
    probe = (
        "import json, sys\n"
        "from vcodec.cli import main\n"
        f"code = main({args!r})\n"
        "print(json.dumps([code, sorted(sys.modules)]), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    code, modules = json.loads(result.stderr.strip().splitlines()[-1])
    return code, set(modules)


def test_info_loads_neither_evaluation_nor_torch_nor_pyav() -> None:
    code, modules = _modules_after(["info", str(GOLDEN / "light_8bit_2f.vcc")])
    assert code == 0
    assert not modules & {*EVALUATION_MODULES, "torch", "av"}


def test_version_loads_nothing_heavy() -> None:
    code, modules = _modules_after(["--version"])
    assert code == 0
    assert not modules & {*EVALUATION_MODULES, "torch", "av"}


def test_decode_does_not_load_the_evaluation(tmp_path: Path) -> None:
    code, modules = _modules_after(["decode", str(GOLDEN / "light_8bit_2f.vcc"), "-o", str(tmp_path / "out.yuv"), "-q"])
    assert code == 0 and (tmp_path / "out.yuv").stat().st_size > 0
    assert not modules & set(EVALUATION_MODULES)
    assert "torch" in modules  # formats 1-5 decode the picture with the float modules


def test_decode_and_info_load_no_encoder_side_module(tmp_path: Path) -> None:
    """The encode command's modules (process pools, resume, settings digests: ~50 ms) load only for it."""
    encoder_side = {"vcodec.sequence.encode", "vcodec.sequence.jobs", "vcodec.sequence.resume",
                    "vcodec.sequence.settings", "vcodec.encoder.encode", "multiprocessing"}
    for args in (["decode", str(GOLDEN.parent / "v6" / "main_8bit_1f.vcc"), "-o", str(tmp_path / "out.yuv"), "-q"],
                 ["info", str(GOLDEN / "light_8bit_2f.vcc")]):
        code, modules = _modules_after(args)
        assert code == 0 and not modules & encoder_side


def test_decoding_format_6_loads_no_torch(tmp_path: Path) -> None:
    """Format 6's picture is fixed point in C: `vcodec decode` spares torch's 1-1.5 s import."""
    code, modules = _modules_after(["decode", str(GOLDEN.parent / "v6" / "main_8bit_1f.vcc"), "-o", str(tmp_path / "out.yuv"), "-q"])
    assert code == 0 and (tmp_path / "out.yuv").stat().st_size > 0
    assert not modules & {*EVALUATION_MODULES, "torch", "av"}


@pytest.mark.parametrize("args", [["eval", "--help"], ["--help"]])
def test_evaluation_commands_are_still_there(args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "vcodec", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert ("--class-dir" in result.stdout) if args[0] == "eval" else all(c in result.stdout for c in ("bdrate", "plot", "eval"))
