"""What an encode reports: training progress while a frame is coded, each frame's statistics once it is,
and a summary of the whole output at the end.

The CLI draws its progress bars from an `EncodeObserver`; the statistics cross from worker processes
to the parent (vcodec.sequence.jobs), so they are plain frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from vcodec.io import VideoInfo
from vcodec.metrics import FramePsnr
from vcodec.types import RateTarget
from vcodec.sequence.psnr import mean_psnr


@dataclass(frozen=True)
class FrameStats:
    """One coded frame as measured after decoding its bitstream."""

    number: int
    bits: int
    bpp: float
    psnr: FramePsnr
    encode_seconds: float
    decode_seconds: float
    arch: str = ""  # the decoder architecture written (the pick of --arch auto)
    lmbda: float | None = None  # the lambda the frame was coded at (rate control picks one per frame)
    target: RateTarget | None = None  # rate control: what the frame was to reach
    probes: int = 0  # rate control: training runs spent (probes from scratch and corrections)
    within: bool | None = None  # rate control: whether the frame met its target's tolerance


@dataclass(frozen=True)
class Progress:
    """One training step of one frame, as the encoder reports it."""

    frame: int
    iteration: int
    total_iterations: int
    loss: float
    psnr_yuv: float
    bpp: float


class EncodeObserver(Protocol):
    """What an encode reports while it runs (the CLI draws progress bars from it)."""

    def started(self, total: int | None, already_done: int) -> None: ...

    def iteration(self, progress: Progress) -> None: ...

    def frame_done(self, stats: FrameStats) -> None: ...


class SilentObserver:
    def started(self, total: int | None, already_done: int) -> None:
        pass

    def iteration(self, progress: Progress) -> None:
        pass

    def frame_done(self, stats: FrameStats) -> None:
        pass


@dataclass
class EncodeSummary:
    """The whole output file (bytes, rate) and the frames coded by this run (quality, time)."""

    output: Path
    info: VideoInfo
    frames: int
    total_bytes: int
    resumed_frames: int
    coded: list[FrameStats] = field(default_factory=list)
    wall_seconds: float = 0.0
    already_complete: bool = False

    @property
    def bpp(self) -> float:
        return 8 * self.total_bytes / (self.frames * self.info.width * self.info.height)

    @property
    def kbps(self) -> float:
        return 8 * self.total_bytes / self.frames * float(self.info.fps) / 1000

    def mean_psnr(self) -> FramePsnr | None:
        return mean_psnr([s.psnr for s in self.coded]) if self.coded else None

    @property
    def decode_seconds(self) -> float:
        return sum(s.decode_seconds for s in self.coded)
