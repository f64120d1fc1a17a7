"""Shared fixtures: tiny real YUV420 clips cut from scikit-image photos; a loud line when the HM tests
cannot run."""

from __future__ import annotations

import pytest
import torch

from vcodec.samples import sample_frames
from vcodec.types import Frame

from hm_sample import HM_SAMPLE

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def frame_8bit() -> Frame:
    return sample_frames(64, 48, 1, 8, "astronaut")[0]


@pytest.fixture(scope="session")
def frame_10bit() -> Frame:
    return sample_frames(72, 40, 1, 10, "coffee")[0]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Skipped HM tests say so in a line of their own: a run without them checks no HM anchor at all."""
    skipped = [report for report in terminalreporter.stats.get("skipped", [])
               if getattr(report, "nodeid", "").split("::")[0].endswith("test_anchor_hm.py")]
    if skipped:
        terminalreporter.write_sep(
            "!", f"{len(skipped)} HM anchor tests SKIPPED: no HM sample at {HM_SAMPLE} (README.md, 'HM tests')",
            yellow=True, bold=True,
        )
