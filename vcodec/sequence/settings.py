"""What the user chose for an encode, checked before any work is done, and what of it the container records.

The record is what `--resume` compares (vcodec.sequence.resume): it includes a digest of the first
frame coded, so that another clip of the same format is not spliced onto the frames already coded.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from vcodec import __version__
from vcodec.config import WARM_START_ON, EncoderConfig, load_config, load_preset, load_rate_points
from vcodec.io import OptionError, frame_to_bytes
from vcodec.types import Frame

# The container setting that identifies the input: the sha256 of its first coded frame.
SOURCE_DIGEST_KEY = "first_frame_sha256"


def source_digest(frame: Frame) -> str:
    """sha256 of a frame's samples as raw planar YUV (8-bit: a byte a sample; 10-bit: 2 bytes, little-endian).

    Stored for the first frame an encode codes, so that `--resume` can refuse another clip of the same
    format, which would otherwise be spliced onto the frames already coded.
    """
    return hashlib.sha256(frame_to_bytes(frame)).hexdigest()


def resolve_lambda(lmbda: float | None, rate: str | None) -> tuple[float, str | None]:
    """The lambda to code with, from `--lmbda` or a named `--rate` (not both)."""
    if lmbda is not None and rate is not None:
        raise OptionError("give either --lmbda or --rate, not both")
    if rate is not None:
        points = load_rate_points()
        if rate not in points:
            raise OptionError(f"unknown rate point {rate!r} (defined: {', '.join(points)})")
        return points[rate], rate
    if lmbda is None:
        raise OptionError("give a rate: --lmbda LAMBDA, --rate NAME (e.g. --rate r2) or a --target-bpp, "
                          "--target-kbps or --target-psnr")
    return check_lambda(lmbda), None


# What a rate target may ask: (option, smallest exclusive, largest inclusive).
TARGET_RANGES: dict[str, tuple[str, float, float]] = {
    "bpp": ("--target-bpp", 0.0, 32.0),
    "kbps": ("--target-kbps", 0.0, 1e9),
    "psnr": ("--target-psnr", 0.0, 100.0),
}


def resolve_rate(lmbda: float | None, rate: str | None, target_bpp: float | None = None,
                 target_kbps: float | None = None, target_psnr: float | None = None
                 ) -> tuple[float | None, str | None, tuple[str, float] | None]:
    """(lambda, rate-point name, target): one way of giving the rate, checked before any work. A target
    (kind "bpp", "kbps" or "psnr", and its value) leaves the lambda to rate control."""
    targets = {kind: value for kind, value in (("bpp", target_bpp), ("kbps", target_kbps), ("psnr", target_psnr))
               if value is not None}
    given = [TARGET_RANGES[kind][0] for kind in targets] + [name for name, value in
                                                             (("--lmbda", lmbda), ("--rate", rate)) if value is not None]
    if len(given) > 1:
        raise OptionError(f"give one of --lmbda, --rate, --target-bpp, --target-kbps, --target-psnr, not {' and '.join(given)}")
    if not targets:
        return (*resolve_lambda(lmbda, rate), None)
    kind, value = next(iter(targets.items()))
    return None, None, (kind, check_target(kind, value))


def check_target(kind: str, value: float) -> float:
    option, low, high = TARGET_RANGES[kind]
    if not (math.isfinite(value) and low < value <= high):
        raise OptionError(f"{option} {value} is out of range: it must be above {low:g} and at most {high:g}")
    return value


def check_lambda(lmbda: float) -> float:
    """The encoder trains only for 0 < lambda < 1; refuse anything else before any work is done."""
    if not 0.0 < lmbda < 1.0:
        raise OptionError(f"--lmbda {lmbda} is out of range: it must be above 0 and below 1 (e.g. 0.001)")
    return lmbda


@dataclass(frozen=True)
class EncodeSettings:
    """What the user chose for an encode; `iterations` overrides the preset's when given. The record
    below is always in an unfinished container (for `--resume`); `keep_in_file` keeps it in the finished
    one too, where it costs some 300 bytes a file. An encode with a `target` (kind "bpp", "kbps" or
    "psnr", and its value) has no lambda of its own, and always keeps its record: `vcodec info` shows
    the target and what was reached. A rate-controlled encode codes every frame cold (no warm start):
    `--warm-start` with a target is refused, and the preset's warm start is turned off."""

    lmbda: float | None
    arch: str = "auto"
    preset: str = "medium"
    rate: str | None = None
    iterations: int | None = None
    seed: int = 0
    device: str = "cpu"
    loss: str = "logmse"
    keep_in_file: bool = False
    target: tuple[str, float] | None = None
    warm_start: bool | None = None  # None: as the preset says; True: on (the preset's kind, else network); False: off
    substreams: int = 0  # latent substreams per frame (0: the format's default)

    def __post_init__(self) -> None:
        if (self.lmbda is None) == (self.target is None):
            raise OptionError("an encode needs either a lambda or a rate target")
        if self.lmbda is not None:
            check_lambda(self.lmbda)
        if self.target is not None:
            if self.target[0] not in TARGET_RANGES:
                raise OptionError(f"unknown rate target {self.target[0]!r} (one of {', '.join(TARGET_RANGES)})")
            check_target(*self.target)
            if self.warm_start:
                raise OptionError("--warm-start cannot be combined with a rate target: a rate-controlled encode "
                                  "codes every frame cold (leave out --warm-start)")

    @property
    def keeps_settings(self) -> bool:
        return self.keep_in_file or self.target is not None

    def encoder_config(self) -> EncoderConfig:
        return load_config(
            self.arch, self.preset, iterations=self.iterations, device=self.device, seed=self.seed, loss=self.loss,
            warm_start=self._warm_start(), latent_substreams=self.substreams,
        )

    def _warm_start(self) -> str | None:
        """The warm_start override of --warm-start / --no-warm-start (None: the preset's own)."""
        if self.target is not None:
            return "off"  # rate control codes every frame cold
        if self.warm_start is None:
            return None
        if not self.warm_start:
            return "off"
        chosen = load_preset(self.preset).warm_start
        return chosen if chosen != "off" else WARM_START_ON

    def record(self, config: EncoderConfig, start: int, first_frame: Frame) -> dict[str, Any]:
        """The settings stored in the container header (informative, and checked by `--resume`)."""
        return {
            "encoder": f"vcodec {__version__}",
            "arch": self.arch,
            "preset": self.preset,
            "lmbda": self.lmbda,
            "rate": self.rate,
            "target": None if self.target is None else {self.target[0]: self.target[1]},
            "iterations": config.preset.iterations,
            "seed": self.seed,
            "loss": self.loss,
            "device": self.device,
            "start": start,
            "warm_start": config.preset.warm_start,
            "warm_chain": config.preset.warm_chain,
            "warm_fraction": config.preset.warm_fraction,
            SOURCE_DIGEST_KEY: source_digest(first_frame),
        }
