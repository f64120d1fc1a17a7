"""Pieces of the command line that need no encode: option parsing, rate points, exit codes."""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import vcodec
from vcodec.bitstream.container import BitstreamError
from vcodec.cli import ERROR_CODES, ExitCode, Interrupted, exit_code_for, main
from vcodec.config import RATE_POINTS_FILE, ConfigError, load_config, load_rate_points
from vcodec.eval.__main__ import main as eval_main
from vcodec.eval.errors import AnchorError, EvalError
from vcodec.eval.vcodec_codec import DEFAULT_LAMBDAS
from vcodec.io import InputError, OptionError, OutputExistsError, video_format_of
from vcodec.sequence.decode import parse_frame_range
from vcodec.sequence.jobs import threads_per_job
from vcodec.sequence.resume import ResumeError
from vcodec.sequence.settings import EncodeSettings, resolve_lambda
from vcodec.types import VcodecError


def test_exit_codes_are_frozen() -> None:
    # Scripts test these numbers; docs/cli.md lists them. Changing one breaks users.
    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0, "ERROR": 1, "USAGE": 2, "INPUT": 3, "BITSTREAM": 4, "OUTPUT_EXISTS": 5, "IO": 6, "RESUME": 7,
        "INTERNAL": 70, "INTERRUPTED": 130, "BROKEN_PIPE": 141,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (OptionError("x"), ExitCode.USAGE),
        (ConfigError("x"), ExitCode.USAGE),
        (InputError("x"), ExitCode.INPUT),
        (BitstreamError("x"), ExitCode.BITSTREAM),
        (OutputExistsError("x"), ExitCode.OUTPUT_EXISTS),
        (ResumeError("x"), ExitCode.RESUME),
        (Interrupted("x"), ExitCode.INTERRUPTED),
        (AnchorError("x"), ExitCode.ERROR),
        (VcodecError("x"), ExitCode.ERROR),
        (FileNotFoundError(2, "No such file"), ExitCode.IO),
        (ZeroDivisionError(), ExitCode.INTERNAL),
    ],
)
def test_every_error_maps_to_its_code(error: BaseException, code: ExitCode) -> None:
    assert exit_code_for(error) == code


def test_every_vcodec_error_class_has_a_code() -> None:
    """Every VcodecError subclass of every module is listed in ERROR_CODES (itself or a base other than
    VcodecError), so none falls through to the catch-all; and no entry is shadowed by an earlier one."""
    for module in pkgutil.walk_packages(vcodec.__path__, "vcodec."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)

    def subclasses(cls: type) -> set[type]:
        return {s for sub in cls.__subclasses__() for s in {sub} | subclasses(sub)}

    assert ERROR_CODES[-1] == (VcodecError, ExitCode.ERROR)  # the catch-all, last
    specific = ERROR_CODES[:-1]
    found = subclasses(VcodecError)
    assert {ResumeError, Interrupted, EvalError} <= found  # the walk reached the CLI, sequence and eval modules
    for cls in found:
        assert any(issubclass(cls, mapped) for mapped, _ in specific), f"{cls.__qualname__} has no exit code"
    for position, (cls, _) in enumerate(specific):
        assert not any(issubclass(cls, earlier) for earlier, _ in specific[:position]), f"{cls.__name__} is shadowed"


def test_rate_points_come_from_the_config_file() -> None:
    """`--rate NAME` resolves through cfg/rate_points.toml as it is on disk (read here with tomllib), the
    eval's default lambdas are the same four, and docs/cli.md quotes the file's values."""
    with RATE_POINTS_FILE.open("rb") as handle:
        on_disk = tomllib.load(handle)["lambda"]
    points = load_rate_points()
    assert points == on_disk and list(points) == list(on_disk) == ["r1", "r2", "r3", "r4"]
    lambdas = list(points.values())
    assert all(0 < value < 1 for value in lambdas)
    assert lambdas == sorted(lambdas, reverse=True)  # r1 is the lowest rate: the largest lambda
    for name, value in on_disk.items():
        assert resolve_lambda(None, name) == (value, name)
    assert DEFAULT_LAMBDAS == tuple(sorted(lambdas))
    docs = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()
    assert f"`r1` = {points['r1']:g} lowest rate ... `r4` = {points['r4']:g} highest" in docs


def test_rate_point_files_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "points.toml"
    path.write_text("[lambda]\nlow = 0.01\nhigh = 0.0002\n")
    assert load_rate_points(path) == {"low": 0.01, "high": 0.0002}
    for text in ("", "[lambda]\n", "[lambda]\nr1 = 0\n", "[lambda]\nr1 = 0.001\nr2 = -0.001\n",
                 '[lambda]\nr1 = "fast"\n', "[lambda]\nr1 = true\n", "lambda = 3\n", "[lambda]\nr1 = [1]\n"):
        path.write_text(text)
        with pytest.raises(ConfigError, match="must map rate-point names to positive numbers"):
            load_rate_points(path)
    path.write_text("[lambda\nr1 = 0.001\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_rate_points(path)


def test_lambda_or_rate_is_required_and_checked() -> None:
    assert resolve_lambda(0.02, None) == (0.02, None)
    for lmbda, rate in [(0.1, "r1"), (None, None), (None, "r7"), (-1.0, None), (0.0, None), (1.0, None), (2.0, None)]:
        with pytest.raises(OptionError):
            resolve_lambda(lmbda, rate)
    with pytest.raises(OptionError, match="below 1"):
        EncodeSettings(2.0)  # a script that skips resolve_lambda is stopped too


@pytest.mark.parametrize(("arch", "preset", "message"), [("main", "turbo", "unknown preset 'turbo'"),
                                                         ("huge", "fast", "unknown arch 'huge'")])
def test_unknown_configuration_names_say_what_they_are(arch: str, preset: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(arch, preset)
    assert str(raised.value).startswith(message + " (available: ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, range(10)), ("3", range(3)), ("2:5", range(2, 5)), ("7:", range(7, 10)), (":4", range(4)),
        ("8:10", range(8, 10)), ("10", range(10)), ("9:", range(9, 10)),
    ],  # fmt: skip
)
def test_frame_ranges(text: str | None, expected: range) -> None:
    assert parse_frame_range(text, 10) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a:b", "invalid"), ("5:2", "invalid"), ("-1:3", "invalid"), ("10:", "starts after the last frame"),
        ("0", "is empty"), ("3:3", "is empty"), (":0", "is empty"),
        ("8:20", "ends after the last frame (the stream has 10 frames)"), ("11", "has 10 frames"),
        (":11", "has 10 frames"),
    ],
)  # fmt: skip
def test_bad_frame_ranges(text: str, message: str) -> None:
    with pytest.raises(OptionError, match=re.escape(message)):
        parse_frame_range(text, 10)


@pytest.mark.parametrize(
    ("path", "requested", "expected"),
    [
        ("out.yuv", None, "raw"), ("OUT.YUV", None, "raw"), ("out.i420", None, "raw"), ("out.y4m", None, "y4m"),
        ("-", None, "raw"), ("-", "y4m", "y4m"), ("out.y4m", "y4m", "y4m"), ("out.bin", "raw", "raw"),
    ],
)  # fmt: skip
def test_output_format_follows_the_suffix(path: str, requested: str | None, expected: str) -> None:
    assert video_format_of(path, requested) == expected


@pytest.mark.parametrize(
    ("path", "requested", "message"),
    [
        ("out.mp4", None, "'.mp4': vcodec writes raw YUV (.yuv) or y4m (.y4m)"), ("out", None, "(none)"),
        ("out.yuv", "y4m", "contradicts"), ("out.y4m", "raw", "contradicts"), ("-", "mp4", "expected raw or y4m"),
    ],
)  # fmt: skip
def test_output_format_refused(path: str, requested: str | None, message: str) -> None:
    with pytest.raises(OptionError) as raised:
        video_format_of(path, requested)
    assert message in str(raised.value)


def test_threads_per_job() -> None:
    assert threads_per_job(1, 3) == 3
    assert threads_per_job(10_000) == 1
    with pytest.raises(OptionError):
        threads_per_job(2, 0)


_WORKER_START = """
import ctypes, sys
from vcodec.sequence.jobs import _die_with_parent
_die_with_parent(int(sys.argv[1]))
signal = ctypes.c_int()
ctypes.CDLL(None).prctl(2, ctypes.byref(signal), 0, 0, 0)  # PR_GET_PDEATHSIG
print(signal.value)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_an_encode_worker_dies_with_its_parent() -> None:
    """A worker asks for SIGKILL when its parent ends, and ends at once when its parent is already
    not the process that started it (the parent died before the request was made)."""
    started = subprocess.run([sys.executable, "-c", _WORKER_START, str(os.getpid())], capture_output=True, text=True)
    assert (started.returncode, started.stdout.strip()) == (0, str(int(signal.SIGKILL))), started.stderr
    orphan = subprocess.run([sys.executable, "-c", _WORKER_START, "1"], capture_output=True, text=True)
    assert orphan.returncode == 1 and orphan.stdout == "", orphan.stderr


@pytest.mark.parametrize("command", ["", "encode", "decode", "info", "psnr", "sample", "eval", "bdrate", "plot"])
def test_help_shows_no_type_after_flags(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`--overwrite <bool>` reads as if the flag wanted a value: flags show none; options that take one do."""
    assert main([*command.split(), "--help"]) == 0
    text = capsys.readouterr().out
    assert "--help" in text and "-h " in text and "<bool>" not in text
    if command in ("encode", "decode", "psnr", "sample"):
        assert "--quiet" in text or "--json" in text
        assert "<str>" in text or "<int>" in text


def test_eval_help_shows_no_type_after_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_main(["eval", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--report-only" in text and "<int>" in text and "<bool>" not in text
