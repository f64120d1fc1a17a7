"""Evaluation of vcodec against HEVC anchors: metrics per sequence, BD-rate per class, tables and plots.

Modules, in the order data flows: `sequences` (CTC class lists, finding files), `codecs` (vcodec and
the anchors behind one interface; `hevc` holds the x265/HM plumbing), `runner` and `store` (jobs run
locally or on Dask, results kept in SQLite), `results` (points.csv), `bdrate`, `report` (bdrate.csv,
table.md), `plots`, `evaluate` (the library form of each verb) and `cli` (the typer commands).
"""

from vcodec.eval.bdrate import BdRate, bd_rate, compare
from vcodec.eval.codecs import Codec, CsvCodec, HmBitstreamCodec, HmLogCodec, X265Codec
from vcodec.eval.errors import AnchorError, EvalError, JobsFailedError, SequencesNotFoundError
from vcodec.eval.evaluate import bdrate_tables, evaluate, plot_tables
from vcodec.eval.results import FrameResult, PointResult, RatePoint, read_points, write_points
from vcodec.eval.sequences import Sequence, class_from_directory, find_sequences, load_class_list
from vcodec.eval.vcodec_codec import VcodecCodec

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
