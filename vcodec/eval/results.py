"""The one result schema every codec produces, and the `points.csv` table written from it.

A job's result (`PointResult`) keeps per-frame bits and per-plane MSEs, so PSNR can be derived with
either peak convention when the tables are written. A table row (`RatePoint`) is one sequence x codec x
rate point: the sequence's PSNRs are the mean of its frames' PSNRs and its rate the sum of their bits.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from vcodec.eval.errors import EvalError
from vcodec.metrics import aggregate_sequence, bits_per_pixel, kilobits_per_second, psnr_from_mses


@dataclass(frozen=True)
class FrameResult:
    """One coded frame: its index in the source, real bits, MSE of Y, U, V against the source."""

    index: int
    bits: int
    mse: tuple[float, float, float]
    ms_ssim_y: float | None = None
    param_bits: int | None = None
    encode_seconds: float | None = None
    arch: str | None = None  # the decoder architecture the frame was written with (vcodec)


@dataclass(frozen=True)
class PointResult:
    """One sequence coded at one rate point by one codec."""

    sequence: str
    seq_class: str
    codec: str
    rate_point: str
    width: int
    height: int
    bitdepth: int
    fps: float
    frames: tuple[FrameResult, ...]
    codec_version: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PointResult:
        data = json.loads(text)
        data["frames"] = tuple(
            FrameResult(**{**frame, "mse": tuple(frame["mse"])}) for frame in data["frames"]
        )
        return cls(**data)

    def rate_point_row(self, hm_peak: bool = True) -> RatePoint:
        psnrs = [psnr_from_mses(f.mse, self.bitdepth, hm_peak) for f in self.frames]
        quality = aggregate_sequence(psnrs, [f.bits for f in self.frames], [f.ms_ssim_y for f in self.frames])
        seconds = [f.encode_seconds for f in self.frames]
        params = [f.param_bits for f in self.frames]
        archs = Counter(f.arch for f in self.frames if f.arch)
        count = len(self.frames)
        return RatePoint(
            sequence=self.sequence,
            seq_class=self.seq_class,
            codec=self.codec,
            rate_point=self.rate_point,
            frames=count,
            bits=quality.bits,
            bpp=bits_per_pixel(quality.bits, self.width, self.height, count),
            psnr_y=quality.psnr_y,
            psnr_u=quality.psnr_u,
            psnr_v=quality.psnr_v,
            psnr_yuv=quality.psnr_yuv,
            encode_seconds=None if any(s is None for s in seconds) else float(sum(s for s in seconds if s)),
            param_bits=None if any(p is None for p in params) else int(sum(p for p in params if p)),
            ms_ssim_y=quality.ms_ssim_y,
            kbps=kilobits_per_second(quality.bits, count, self.fps),
            width=self.width,
            height=self.height,
            bitdepth=self.bitdepth,
            fps=self.fps,
            first_frame=self.frames[0].index,
            codec_version=self.codec_version,
            peak="hm" if hm_peak else "max",
            archs=" ".join(f"{name}:{n}" for name, n in sorted(archs.items())),
        )


@dataclass(frozen=True)
class RatePoint:
    """A row of points.csv. Column order is the documented contract: append, never reorder."""

    sequence: str
    seq_class: str
    codec: str
    rate_point: str
    frames: int
    bits: int
    bpp: float
    psnr_y: float
    psnr_u: float
    psnr_v: float
    psnr_yuv: float
    encode_seconds: float | None
    param_bits: int | None = None
    ms_ssim_y: float | None = None
    kbps: float | None = None
    width: int | None = None
    height: int | None = None
    bitdepth: int | None = None
    fps: float | None = None
    first_frame: int | None = None
    codec_version: str = ""
    peak: str = ""
    archs: str = ""  # decoder architectures written, with their frame counts: "small:2 tiny:1"

    @property
    def param_share(self) -> float | None:
        return None if self.param_bits is None or self.bits <= 0 else self.param_bits / self.bits


# CSV header names; `seq_class` is written as `class`.
POINT_COLUMNS: tuple[str, ...] = tuple("class" if f.name == "seq_class" else f.name for f in fields(RatePoint))
REQUIRED_COLUMNS: tuple[str, ...] = (
    "sequence", "class", "codec", "rate_point", "frames", "bits", "bpp", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv",
)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}" if math.isfinite(value) else ""
    return str(value)


def write_points(path: str | Path, rows: list[RatePoint]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(POINT_COLUMNS)
        for row in rows:
            writer.writerow([_cell(getattr(row, f.name)) for f in fields(RatePoint)])


def _parse(kind: type, text: str, where: str) -> object:
    if text == "":
        return None
    try:
        if kind is int:
            return int(float(text))
        if kind is float:
            return float(text)
    except ValueError:
        raise EvalError(f"{where}: {text!r} is not a number") from None
    return text


def read_points(path: str | Path) -> list[RatePoint]:
    """Read a points.csv (ours, or anyone's with at least the required columns)."""
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"result table {path} does not exist")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise EvalError(f"{path} lacks column(s) {', '.join(missing)} (see docs/eval.md for the layout)")
        kinds = {f.name: f.type for f in fields(RatePoint)}
        rows = []
        for line_number, record in enumerate(reader, start=2):
            values: dict[str, object] = {}
            for column, name in zip(POINT_COLUMNS, (f.name for f in fields(RatePoint))):
                text = (record.get(column) or "").strip()
                kind_name = str(kinds[name])
                kind: type = int if kind_name.startswith("int") else float if kind_name.startswith("float") else str
                value = _parse(kind, text, f"{path}:{line_number} column {column}")
                if value is None and kind is str:
                    value = ""
                values[name] = value
            for column in REQUIRED_COLUMNS:
                name = "seq_class" if column == "class" else column
                if values[name] in (None, "") and column != "class":
                    raise EvalError(f"{path}:{line_number}: column {column} is empty")
            rows.append(RatePoint(**values))  # type: ignore[arg-type]
    return rows
