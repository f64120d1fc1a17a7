"""Shared fixtures: tiny real YUV420 clips cut from scikit-image photos."""

from __future__ import annotations

import pytest
import torch

from vcodec.samples import sample_frames
from vcodec.types import Frame

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def frame_8bit() -> Frame:
    return sample_frames(64, 48, 1, 8, "astronaut")[0]


@pytest.fixture(scope="session")
def frame_10bit() -> Frame:
    return sample_frames(72, 40, 1, 10, "coffee")[0]
