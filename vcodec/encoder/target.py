"""The frame to fit, as normalised float planes on the training device."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vcodec.types import Frame


@dataclass(frozen=True)
class Target:
    luma: torch.Tensor    # (1, 1, H, W) in [0, 1]
    chroma: torch.Tensor  # (1, 2, H/2, W/2) in [0, 1]

    @property
    def pixels(self) -> int:
        return self.luma.shape[-1] * self.luma.shape[-2]


def make_target(frame: Frame, device: str) -> Target:
    peak = float(frame.max_value)
    luma = torch.from_numpy(frame.y.astype(np.float32) / peak).view(1, 1, frame.height, frame.width)
    chroma = torch.from_numpy(np.stack([frame.u, frame.v]).astype(np.float32) / peak)[None]
    return Target(luma.to(device), chroma.to(device))
