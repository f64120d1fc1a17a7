"""Rate-distortion curves as PNG files (matplotlib, Agg backend): one per sequence, one per class.

Every codec of the table is drawn on the same axes: PSNR-YUV against bits per pixel or kbit/s. A class
curve is the mean, at each rate point, of the rates and PSNRs of the class's sequences that have it.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first

from vcodec.eval.errors import EvalError  # noqa: E402
from vcodec.eval.results import RatePoint  # noqa: E402

X_AXES: dict[str, str] = {"bpp": "rate (bits per pixel)", "kbps": "rate (kbit/s)"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _safe(name: str) -> str:
    return _UNSAFE.sub("-", name).strip("-") or "unnamed"


def _x(point: RatePoint, axis: str) -> float:
    if axis == "kbps":
        if point.kbps is None:
            raise EvalError(f"{point.sequence}: no kbps in the table (frame rate unknown); plot with bpp")
        return point.kbps
    return point.bpp


def _draw(curves: dict[str, list[tuple[float, float]]], title: str, axis: str, path: Path) -> None:
    figure, axes = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    for codec, points in curves.items():
        ordered = sorted(points)
        axes.plot([x for x, _ in ordered], [y for _, y in ordered], marker="o", label=codec)
    axes.set_xlabel(X_AXES[axis])
    axes.set_ylabel("PSNR-YUV (dB), (6Y+U+V)/8")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_curves(points: list[RatePoint], out_dir: str | Path, axis: str = "bpp") -> list[Path]:
    """Write `<class>_<sequence>.png` per sequence and `class_<class>.png` per class; returns the paths."""
    if axis not in X_AXES:
        raise EvalError(f"unknown rate axis {axis!r} (choose from {', '.join(X_AXES)})")
    if not points:
        raise EvalError("no rate points to plot")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    sequences: dict[tuple[str, str], dict[str, list[tuple[float, float]]]] = {}
    for point in points:
        curves = sequences.setdefault((point.seq_class, point.sequence), {})
        curves.setdefault(point.codec, []).append((_x(point, axis), point.psnr_yuv))
    for (seq_class, sequence), curves in sequences.items():
        path = out / f"{_safe(seq_class)}_{_safe(sequence)}.png"
        _draw(curves, f"{sequence} (class {seq_class})" if seq_class else sequence, axis, path)
        written.append(path)
    for seq_class in dict.fromkeys(p.seq_class for p in points):
        members = [p for p in points if p.seq_class == seq_class]
        grouped: dict[str, dict[str, list[RatePoint]]] = {}
        for point in members:
            grouped.setdefault(point.codec, {}).setdefault(point.rate_point, []).append(point)
        curves = {
            codec: [(sum(_x(p, axis) for p in group) / len(group), sum(p.psnr_yuv for p in group) / len(group))
                    for group in by_rate.values()]
            for codec, by_rate in grouped.items()
        }
        count = len({p.sequence for p in members})
        path = out / f"class_{_safe(seq_class)}.png"
        _draw(curves, f"class {seq_class}: mean of {count} sequence(s) per rate point", axis, path)
        written.append(path)
    return written
