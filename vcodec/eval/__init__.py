"""Evaluation of vcodec against HEVC anchors: metrics per sequence, BD-rate per class, tables and plots.

Modules, in the order data flows: `sequences` (CTC class lists, finding files), `codecs` (vcodec and
the anchors behind one interface; `hevc` holds the x265/HM plumbing), `runner` and `store` (jobs run
locally or on Dask, results kept in SQLite), `results` (points.csv), `bdrate`, `report` (bdrate.csv,
table.md), `plots`, `evaluate` (the library form of each verb) and `cli` (the typer commands).
"""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use (PEP 562): `vcodec.eval.errors` is imported by the main command line for its
# exit codes, and must not drag in bjontegaard, scipy and matplotlib (over a second of start-up).
_HOMES: dict[str, str] = {
    "BdRate": "bdrate", "bd_rate": "bdrate", "compare": "bdrate",
    "Codec": "codecs", "CsvCodec": "codecs", "HmBitstreamCodec": "codecs", "HmLogCodec": "codecs",
    "X265Codec": "codecs",
    "AnchorError": "errors", "EvalError": "errors", "JobsFailedError": "errors", "SequencesNotFoundError": "errors",
    "bdrate_tables": "evaluate", "evaluate": "evaluate", "plot_tables": "evaluate",
    "FrameResult": "results", "PointResult": "results", "RatePoint": "results", "read_points": "results",
    "write_points": "results",
    "Sequence": "sequences", "class_from_directory": "sequences", "find_sequences": "sequences",
    "load_class_list": "sequences",
    "VcodecCodec": "vcodec_codec",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'vcodec.eval' has no attribute {name!r}")
    return getattr(importlib.import_module(f"vcodec.eval.{home}"), name)


__all__ = [
    "AnchorError",
    "BdRate",
    "Codec",
    "CsvCodec",
    "EvalError",
    "FrameResult",
    "HmBitstreamCodec",
    "HmLogCodec",
    "JobsFailedError",
    "PointResult",
    "RatePoint",
    "Sequence",
    "SequencesNotFoundError",
    "VcodecCodec",
    "X265Codec",
    "bd_rate",
    "bdrate_tables",
    "class_from_directory",
    "compare",
    "evaluate",
    "find_sequences",
    "load_class_list",
    "plot_tables",
    "read_points",
    "write_points",
]
