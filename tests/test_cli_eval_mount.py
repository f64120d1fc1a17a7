"""The evaluation verbs are reachable from the main console script, as users type them."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("verb,word", [("eval", "--anchor"), ("bdrate", "anchor_table"), ("plot", "png")])
def test_main_command_line_has_the_evaluation_verbs(verb: str, word: str) -> None:
    result = subprocess.run([sys.executable, "-m", "vcodec", verb, "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert word.lower() in result.stdout.lower()
