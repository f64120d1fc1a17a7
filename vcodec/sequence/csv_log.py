"""The per-frame statistics of `vcodec encode --csv`: one row a frame, written as each frame is kept.

The columns and the row that fills them are defined here together, so that they cannot drift apart.
"""

from __future__ import annotations

import csv
from pathlib import Path

from vcodec.sequence.reports import FrameStats

CSV_COLUMNS: tuple[str, ...] = (
    "frame", "bits", "bpp", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv",
    "lmbda", "preset", "encode_seconds", "decode_seconds", "arch", "target", "probes",
)  # fmt: skip


def csv_row(stats: FrameStats, lmbda: float | None, preset: str) -> list[str]:
    """One frame's row, in the order of CSV_COLUMNS. `lmbda` is the frame's own (rate control picks one a
    frame), else the encode's; `target` is `bpp=B` or `psnr=P` (the frame's), empty without rate control;
    `probes` the training runs rate control spent (0 without)."""
    p = stats.psnr
    quality = [f"{value:.4f}" for value in (p.y, p.u, p.v, p.yuv)]
    times = [f"{stats.encode_seconds:.3f}", f"{stats.decode_seconds:.4f}"]
    frame_lmbda = stats.lmbda if stats.lmbda is not None else lmbda
    target = "" if stats.target is None else f"{stats.target.metric}={stats.target.value:.6g}"
    return [str(stats.number), str(stats.bits), f"{stats.bpp:.6f}", *quality, repr(frame_lmbda), preset, *times,
            stats.arch, target, str(stats.probes)]


class CsvLog:
    """Per-frame statistics, one flushed row per frame; on resume, rows of earlier frames are kept."""

    def __init__(self, path: Path, keep_before: int) -> None:
        rows: list[list[str]] = []
        if keep_before and path.exists():
            with path.open(newline="") as handle:
                rows = [row for row in csv.reader(handle) if row and row[0].isdigit() and int(row[0]) < keep_before]
        self._handle = path.open("w", newline="")
        self._writer = csv.writer(self._handle, lineterminator="\n")
        self._writer.writerow(CSV_COLUMNS)
        self._writer.writerows(rows)
        self._handle.flush()

    def write(self, row: list[str]) -> None:
        self._writer.writerow(row)
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()
