"""The codec under test: vcodec at one architecture and encoder preset, over a list of lambdas, or at the
anchor's own rates or PSNRs through rate control (`match_points`, `vcodec eval --match-anchor`).

Rates are the size of the frame bitstream (8 x its bytes); qualities come from `decode_frame` of those
bytes against the source: the encoder's `reconstruction` is that decode, never a training estimate.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import vcodec
from vcodec.config import load_rate_points
from vcodec.eval.codecs import Codec, measured_frame
from vcodec.eval.errors import EvalError
from vcodec.eval.results import PointResult
from vcodec.eval.sequences import Sequence

if TYPE_CHECKING:
    from vcodec.config import EncoderConfig

# The named rate points of cfg/rate_points.toml, highest rate first: one set of lambdas for encode and eval.
DEFAULT_LAMBDAS: tuple[float, ...] = tuple(sorted(load_rate_points().values()))
# What an encode's bytes depend on: the codec's code and its presets (not the CLI, io or eval code).
_CODEC_SOURCES: tuple[str, ...] = ("model", "encoder", "entropy", "bitstream", "decoder.py", "config.py", "types.py")


@cache
def codec_source_digest() -> str:
    """A digest of the codec's source files and presets: results stored for other code are not reused.

    The version number alone does not change while the codec is being developed; the store must not
    mix results of two different encoders under one key.
    """
    package = Path(vcodec.__file__).resolve().parent
    files: list[Path] = []
    for name in _CODEC_SOURCES:
        path = package / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    cfg = package.parent / "cfg"
    files += sorted((cfg / "arch").glob("*.toml")) + sorted((cfg / "presets").glob("*.toml"))
    files.append(cfg / "rate_control.toml")  # what --match-anchor's rate control searches with
    digest = hashlib.sha256()
    for path in files:
        if path.is_file():
            digest.update(path.relative_to(package.parent).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def lambda_label(lmbda: float) -> str:
    return f"{lmbda:g}"


MATCH_METRICS: tuple[str, ...] = ("bpp", "psnr")  # what --match-anchor can match: RateTarget's metrics


def target_label(metric: str, value: float) -> str:
    """The rate point of a matched target, `bpp=0.412345` or `psnr=36.8018` (6 significant digits, so the
    store key is stable)."""
    return f"{metric}={value:.6g}"


def parse_target_label(rate_point: str) -> tuple[str, float] | None:
    """(metric, value) of a matched target's rate point; None for a lambda."""
    metric, sign, value = rate_point.partition("=")
    return (metric, float(value)) if sign and metric in MATCH_METRICS else None


@dataclass
class VcodecCodec(Codec):
    """`overrides` are load_config's keyword overrides (iterations, device, seed, ...)."""

    arch: str = "auto"
    preset: str = "medium"
    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS
    overrides: dict[str, object] = field(default_factory=dict)
    name: str = ""
    matched: dict[str, tuple[float, ...]] | None = None  # sequence -> targets (set by match_points)
    matched_metric: str = "bpp"

    def __post_init__(self) -> None:
        if not self.lambdas or any(not 0.0 < lmbda < 1.0 for lmbda in self.lambdas):
            raise EvalError(f"lambdas must be within (0, 1), got {list(self.lambdas)}")
        self.lambdas = tuple(sorted(set(self.lambdas)))
        self.overrides = {k: v for k, v in self.overrides.items() if v is not None}
        # Resolved once, here: an unknown arch, preset or override fails now, not in a worker, and every
        # job trains with the settings its store key was computed from, even if cfg/ changes mid-run.
        from vcodec.config import load_config

        self._config = load_config(self.arch, self.preset, **self.overrides)
        self.name = self.name or f"vcodec-{self.arch}-{self.preset}"

    def config(self) -> EncoderConfig:
        return self._config

    @property
    def uses_gpu(self) -> bool:  # type: ignore[override]
        return self.config().device == "cuda"

    def version(self) -> str:
        from vcodec.bitstream.frame_header import FORMAT_VERSION

        return f"vcodec-{vcodec.__version__}-frame-format-{FORMAT_VERSION}-src-{codec_source_digest()}"

    def settings(self) -> dict[str, object]:
        # Matched rates change how a point is coded (a lambda search): its key must differ from a lambda's.
        return {"codec": "vcodec", "config": dataclasses.asdict(self.config()), "rate_control": self.matched is not None}

    def match_points(self, metric: str, values: dict[str, tuple[float, ...]]) -> None:
        if metric not in MATCH_METRICS:
            raise EvalError(f"cannot match the anchor's {metric!r} (choose from {', '.join(MATCH_METRICS)})")
        self.matched_metric = metric
        self.matched = {name: tuple(sorted(set(points))) for name, points in values.items()}

    def describe(self) -> str:
        cfg = self.config()
        matched = {"bpp": "rates (--target-bpp", "psnr": "PSNR-YUVs (--target-psnr"}[self.matched_metric]
        points = (f"the anchor's {matched} rate control per frame)" if self.matched is not None
                  else "lambda " + "/".join(lambda_label(v) for v in self.lambdas))
        return (f"vcodec {vcodec.__version__}, architecture {self.arch}, preset {self.preset} "
                f"({cfg.preset.iterations} iterations, {cfg.device}), {points}")

    def rate_points(self, sequence: Sequence) -> list[str]:
        if self.matched is not None:
            return [target_label(self.matched_metric, v) for v in self.matched.get(sequence.name, ())]
        return [lambda_label(v) for v in self.lambdas]

    def code(self, sequence: Sequence, first_frame: int, frames: int, rate_point: str) -> PointResult:
        from vcodec.encoder import encode_frame_report
        from vcodec.encoder.rate_control import encode_to_target
        from vcodec.types import RateTarget

        cfg = self.config()
        results = []
        target = parse_target_label(rate_point)
        for offset, source in enumerate(sequence.read_frames(first_frame, frames)):
            start = time.perf_counter()
            if target is not None:  # every frame at the anchor point's mean bpp, or mean PSNR-YUV
                encoded = encode_to_target(source, RateTarget(*target), cfg).encoded
            else:
                encoded = encode_frame_report(source, float(rate_point), cfg)
            seconds = time.perf_counter() - start
            # The reconstruction is decode_frame(encoded.data): quality is measured on decoded output.
            results.append(measured_frame(first_frame + offset, source, encoded.reconstruction,
                                          8 * len(encoded.data), seconds,
                                          encoded.parameter_bits, encoded.arch_name))
        return self._result(sequence, rate_point, results)
