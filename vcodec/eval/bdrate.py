"""BD-rate that does not mislead: the `bjontegaard` package's computation, wrapped in the checks it needs.

A pair of curves gives a number only when each has at least 4 points, PSNR rises strictly with rate on
both, and their PSNR ranges overlap; otherwise it gives "n/a" with the reason. Every pair reports its
overlap (the shared PSNR interval as a fraction of the union of both ranges). A class's BD-rate is the
mean of its sequences' BD-rates, the overall figure the mean of the class figures (as in Table II of
the Cool-chic v2 paper); "n/a" entries are left out of both, with a note naming them.

Methods: `pchip` (piecewise cubic Hermite interpolation, the JCT-VC/JVET CTC reference spreadsheet;
the default), `akima`, and `cubic` (the polynomial fit of the original VCEG-M33 proposal).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field

import bjontegaard

from vcodec.eval.errors import EvalError
from vcodec.eval.results import RatePoint

BD_METHODS: tuple[str, ...] = ("pchip", "akima", "cubic")
MIN_POINTS = 4
METRICS: tuple[str, ...] = ("y", "u", "v", "yuv")


@dataclass(frozen=True)
class BdRate:
    """Percent rate change of the test at equal PSNR (negative: the test needs fewer bits), or n/a."""

    value: float | None
    reason: str = ""
    overlap: float | None = None
    overlap_db: tuple[float, float] | None = None

    @property
    def available(self) -> bool:
        return self.value is not None

    def text(self, digits: int = 1) -> str:
        return "n/a" if self.value is None else f"{self.value:+.{digits}f}"


def _values_problem(role: str, rates: list[float], psnrs: list[float]) -> str | None:
    if len(rates) != len(psnrs):
        return f"{role} has {len(rates)} rates but {len(psnrs)} PSNRs"
    if not rates:
        return f"{role} has no rate points"
    if any(not math.isfinite(r) or r <= 0 for r in rates) or any(not math.isfinite(p) for p in psnrs):
        return f"{role} has a non-positive rate or a non-finite PSNR"
    return None


def _shape_problem(role: str, rates: list[float], psnrs: list[float]) -> str | None:
    if len(rates) < MIN_POINTS:
        return f"{role} has {len(rates)} rate point(s), {MIN_POINTS} needed"
    ordered = sorted(zip(rates, psnrs))
    for (rate_a, psnr_a), (rate_b, psnr_b) in zip(ordered, ordered[1:]):
        if rate_b <= rate_a or psnr_b <= psnr_a:
            return (f"{role} is not monotonic: {psnr_a:.3f} dB at {rate_a:.6g} then {psnr_b:.3f} dB "
                    f"at {rate_b:.6g}")
    return None


def psnr_overlap(anchor_psnrs: list[float], test_psnrs: list[float]) -> tuple[float, tuple[float, float] | None]:
    """The shared PSNR interval of two curves, and its length as a fraction of their union (0: none)."""
    low, high = max(min(anchor_psnrs), min(test_psnrs)), min(max(anchor_psnrs), max(test_psnrs))
    union = max(max(anchor_psnrs), max(test_psnrs)) - min(min(anchor_psnrs), min(test_psnrs))
    if high <= low or union <= 0:
        return 0.0, None
    return (high - low) / union, (low, high)


def bd_rate(
    anchor_rates: Seq[float],
    anchor_psnrs: Seq[float],
    test_rates: Seq[float],
    test_psnrs: Seq[float],
    method: str = "pchip",
) -> BdRate:
    """BD-rate of one test curve against one anchor curve, or n/a with the reason; the overlap always."""
    if method not in BD_METHODS:
        raise EvalError(f"unknown BD-rate method {method!r} (choose from {', '.join(BD_METHODS)})")
    anchor_rates, anchor_psnrs = [float(r) for r in anchor_rates], [float(p) for p in anchor_psnrs]
    test_rates, test_psnrs = [float(r) for r in test_rates], [float(p) for p in test_psnrs]
    curves = (("anchor", anchor_rates, anchor_psnrs), ("test", test_rates, test_psnrs))
    for role, rates, psnrs in curves:
        problem = _values_problem(role, rates, psnrs)
        if problem:
            return BdRate(None, problem)
    overlap, overlap_db = psnr_overlap(anchor_psnrs, test_psnrs)
    for role, rates, psnrs in curves:
        problem = _shape_problem(role, rates, psnrs)
        if problem:
            return BdRate(None, problem, overlap, overlap_db)
    if overlap_db is None:
        return BdRate(
            None,
            f"PSNR ranges do not overlap (anchor {min(anchor_psnrs):.2f}-{max(anchor_psnrs):.2f} dB, "
            f"test {min(test_psnrs):.2f}-{max(test_psnrs):.2f} dB)",
            0.0,
        )
    anchor = sorted(zip(anchor_rates, anchor_psnrs))
    test = sorted(zip(test_rates, test_psnrs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = bjontegaard.bd_rate(
            [r for r, _ in anchor], [p for _, p in anchor], [r for r, _ in test], [p for _, p in test],
            method=method, require_matching_points=False, min_overlap=0.0,
        )
    if not math.isfinite(value):
        return BdRate(None, f"the {method} interpolation gave no finite value", overlap, overlap_db)
    return BdRate(float(value), "", overlap, overlap_db)


@dataclass(frozen=True)
class BdRow:
    """One row of bdrate.csv: a sequence, a class, or `overall`, for one test codec against one anchor."""

    name: str
    level: str
    test_codec: str
    anchor_codec: str
    method: str
    values: dict[str, BdRate]
    seq_class: str = ""
    count: int = 0
    note: str = ""
    param_share: float | None = None

    @property
    def reason(self) -> str:
        reasons = {}
        for metric in METRICS:
            rate = self.values[metric]
            if not rate.available:
                reasons.setdefault(rate.reason, []).append(metric.upper())
        return "; ".join(f"{'/'.join(metrics)}: {reason}" for reason, metrics in reasons.items())


def _psnr(point: RatePoint, metric: str) -> float:
    return float(getattr(point, f"psnr_{metric}"))


def sequence_bd_rates(anchor: list[RatePoint], test: list[RatePoint], method: str) -> dict[str, BdRate]:
    """The four BD-rates (Y, U, V, YUV) of one sequence; rates are the sums of real bits."""
    frames = {p.frames for p in anchor} | {p.frames for p in test}
    if len(frames) > 1:
        reason = f"anchor and test coded different frame counts ({sorted(frames)})"
        return {m: BdRate(None, reason) for m in METRICS}
    return {
        m: bd_rate([p.bits for p in anchor], [_psnr(p, m) for p in anchor],
                   [p.bits for p in test], [_psnr(p, m) for p in test], method)
        for m in METRICS
    }


def _mean_share(points: list[RatePoint]) -> float | None:
    shares = [p.param_share for p in points]
    if not shares or any(s is None for s in shares):
        return None
    return sum(s for s in shares if s is not None) / len(shares)


def _aggregate(rows: list[BdRow], name: str, level: str, test: str, anchor: str, method: str,
               weights_of: str) -> BdRow:
    values: dict[str, BdRate] = {}
    notes: list[str] = []
    for metric in METRICS:
        usable = [r for r in rows if r.values[metric].available]
        left_out = [r.name for r in rows if not r.values[metric].available]
        if usable:
            mean = sum(r.values[metric].value or 0.0 for r in usable) / len(usable)
            values[metric] = BdRate(mean)
        else:
            values[metric] = BdRate(None, f"no {weights_of} with a BD-rate")
        if left_out and usable:
            notes.append(f"{metric.upper()}: {', '.join(left_out)} n/a, left out of the mean")
    shares = [r.param_share for r in rows if r.param_share is not None]
    return BdRow(name, level, test, anchor, method, values, "", sum(r.count for r in rows), "; ".join(notes),
                 sum(shares) / len(shares) if shares else None)


def compare(points: list[RatePoint], anchor_codec: str, test_codec: str, method: str = "pchip") -> list[BdRow]:
    """Per-sequence rows, then one row per class (mean of its sequences), then `overall` (mean of classes)."""
    by_sequence: dict[tuple[str, str], dict[str, list[RatePoint]]] = {}
    for point in points:
        if point.codec in (anchor_codec, test_codec):
            entry = by_sequence.setdefault((point.seq_class, point.sequence), {anchor_codec: [], test_codec: []})
            entry[point.codec].append(point)
    if not by_sequence:
        raise EvalError(f"no results for codecs {anchor_codec!r} and {test_codec!r}")
    sequence_rows: list[BdRow] = []
    for (seq_class, sequence), curves in by_sequence.items():
        anchor, test = curves[anchor_codec], curves[test_codec]
        if not anchor or not test:
            missing = anchor_codec if not anchor else test_codec
            values = {m: BdRate(None, f"no points of {missing}") for m in METRICS}
        else:
            values = sequence_bd_rates(anchor, test, method)
        sequence_rows.append(BdRow(sequence, "sequence", test_codec, anchor_codec, method, values, seq_class, 1,
                                   param_share=_mean_share(test)))
    class_rows = []
    for seq_class in dict.fromkeys(r.seq_class for r in sequence_rows):
        members = [r for r in sequence_rows if r.seq_class == seq_class]
        class_rows.append(_aggregate(members, seq_class, "class", test_codec, anchor_codec, method, "sequence"))
    overall = _aggregate(class_rows, "overall", "overall", test_codec, anchor_codec, method, "class")
    return [*sequence_rows, *class_rows, overall]


@dataclass
class Comparison:
    """All BD-rate rows of one evaluation: each test codec against the anchor."""

    anchor_codec: str
    method: str
    rows: dict[str, list[BdRow]] = field(default_factory=dict)


def compare_all(points: list[RatePoint], anchor_codec: str, test_codecs: list[str], method: str) -> Comparison:
    comparison = Comparison(anchor_codec, method)
    for test in test_codecs:
        comparison.rows[test] = compare(points, anchor_codec, test, method)
    return comparison
