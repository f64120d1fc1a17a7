"""The test suite itself: what a run says when something the tests need is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_missing_hm_sample_is_reported_loudly(tmp_path: Path) -> None:
    """Without the HM sample the 16 HM tests are skipped, and the summary says so in its own line."""
    missing = tmp_path / "no-hm-sample"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_anchor_hm.py"],
        cwd=ROOT, env=dict(os.environ, VCODEC_HM_SAMPLE=str(missing)), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "HM anchor tests SKIPPED" in line]
    assert len(lines) == 1, result.stdout
    assert f"16 HM anchor tests SKIPPED: no HM sample at {missing} (README.md, 'HM tests')" in lines[0]
