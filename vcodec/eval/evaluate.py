"""The three evaluation verbs as library functions: `evaluate` (code, store, report), `bdrate_tables`
(two result tables in, BD-rates out) and `plot_tables` (RD curves from result tables).

`evaluate` writes into its output folder:
    points.csv   one row per sequence x codec x rate point (see vcodec.eval.results.POINT_COLUMNS)
    bdrate.csv   one row per sequence, per class and `overall`, per test codec (vcodec.eval.report)
    table.md     the BD-rate table laid out like Table II of the Cool-chic v2 paper
    plots/*.png  RD curves per sequence and per class
    results.sqlite  the results store that makes reruns resume (unless another store is named)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from vcodec.eval.bdrate import BD_METHODS, Comparison, compare_all
from vcodec.eval.codecs import Codec
from vcodec.eval.errors import AnchorError, EvalError, JobsFailedError
from vcodec.eval.plots import X_AXES, plot_curves
from vcodec.eval.report import write_bdrate_csv, write_table
from vcodec.eval.results import RatePoint, read_points, write_points
from vcodec.eval.runner import Job, RunSummary, make_job, run_jobs
from vcodec.eval.sequences import Sequence
from vcodec.eval.store import STORE_NAME, ResultStore


@dataclass(frozen=True)
class EvalOutputs:
    summary: RunSummary
    points: list[RatePoint]
    comparison: Comparison
    out_dir: Path
    plots: list[Path]


def plan_jobs(sequences: list[Sequence], codecs: list[Codec], first_frame: int, frames: int) -> list[Job]:
    """Every (sequence, codec, rate point) job, anchors first; any sequence a codec has no rate point for
    is reported, all in one message, before anything runs."""
    if frames < 1 or first_frame < 0:
        raise EvalError(f"frames must be at least 1 and the first frame non-negative (got {frames}, {first_frame})")
    jobs: list[Job] = []
    problems: list[str] = []
    for codec in codecs:
        for sequence in sequences:
            points = codec.rate_points(sequence)
            if not points:
                problems.append(f"{codec.name} has nothing for {sequence.name}")
            jobs.extend(make_job(sequence, codec, point, first_frame, frames) for point in points)
    if problems:
        raise AnchorError("; ".join(problems))
    return jobs


def anchor_points(anchor_jobs: list[Job], store: ResultStore, metric: str) -> dict[str, tuple[float, ...]]:
    """Sequence name -> the bits per pixel (`metric` bpp) or PSNR-YUV (psnr; HM's peak, as rate control
    measures) of each of the anchor's rate points, for the sequences whose anchor points are all in the
    store: the targets `--match-anchor` codes at."""
    rates: dict[str, list[float]] = {}
    missing: set[str] = set()
    for job in anchor_jobs:
        stored = store.get(job.key)
        if stored is None:
            missing.add(job.sequence.name)
        else:
            row = stored.result.rate_point_row(hm_peak=True)
            rates.setdefault(job.sequence.name, []).append(row.bpp if metric == "bpp" else row.psnr_yuv)
    return {name: tuple(values) for name, values in rates.items() if name not in missing}


def _check_options(codecs: list[Codec], method: str, axis: str) -> None:
    if method not in BD_METHODS:
        raise EvalError(f"unknown BD-rate method {method!r} (choose from {', '.join(BD_METHODS)})")
    if axis not in X_AXES:
        raise EvalError(f"unknown rate axis {axis!r} (choose from {', '.join(X_AXES)})")
    names = [c.name for c in codecs]
    if len(set(names)) != len(names):
        raise EvalError(f"two codecs share a name: {names}")


def write_reports(points: list[RatePoint], anchor: str, tests: list[str], out_dir: Path, method: str, axis: str,
                  descriptions: dict[str, str] | None = None, peak: str = "hm",
                  frames_note: str = "") -> tuple[Comparison, list[Path]]:
    """points.csv, bdrate.csv, table.md and plots/ from a list of rate points."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_points(out_dir / "points.csv", points)
    comparison = compare_all(points, anchor, tests, method)
    write_bdrate_csv(out_dir / "bdrate.csv", comparison)
    write_table(out_dir / "table.md", comparison, descriptions, peak, frames_note, points)
    plots = plot_curves(points, out_dir / "plots", axis) if points else []
    return comparison, plots


def evaluate(
    sequences: list[Sequence],
    test_codecs: list[Codec],
    anchor: Codec,
    out_dir: str | Path,
    *,
    first_frame: int = 0,
    frames: int = 1,
    method: str = "pchip",
    hm_peak: bool = True,
    axis: str = "bpp",
    workers: int | None = None,
    threads: int | None = None,
    scheduler: str | None = None,
    store_path: str | Path | None = None,
    quiet: bool = False,
    report_only: bool = False,
    match_anchor: bool = False,
    match_metric: str = "bpp",
) -> EvalOutputs:
    """Code every sequence with every codec at each of its rate points, then write the reports.

    With `match_anchor`, the anchor runs first and the codecs under test code each sequence at the
    anchor's own bits per pixel (`match_metric` bpp) or PSNR-YUV (psnr), through rate control: matched
    PSNRs make the curves span the anchor's whole PSNR range, matched rates its whole rate range.

    With `report_only`, nothing runs: the reports are written from what the store holds (e.g. while a
    long run is under way elsewhere), and say how many jobs have no result yet.
    Raises JobsFailedError after writing the reports if some jobs failed twice (they are left out).
    """
    if not sequences:
        raise EvalError("no sequences to evaluate")
    codecs = [anchor, *test_codecs]
    _check_options(codecs, method, axis)
    out = Path(out_dir)
    with ResultStore(store_path or out / STORE_NAME) as store:
        def announce(total: int, skipped: int) -> None:
            if not quiet:
                print(f"{total} jobs, {skipped} already in {store.path}", file=sys.stderr)

        def run(jobs: list[Job]) -> RunSummary:
            if report_only:
                return RunSummary(total=len(jobs), skipped=sum(store.has(job.key) for job in jobs))
            return run_jobs(jobs, store, workers=workers, threads=threads, scheduler=scheduler, quiet=quiet,
                            on_start=announce)

        anchor_run = None
        if match_anchor:
            anchor_jobs = plan_jobs(sequences, [anchor], first_frame, frames)
            anchor_run = run(anchor_jobs)
            rates = anchor_points(anchor_jobs, store, match_metric)
            unmatched = sorted({job.sequence.name for job in anchor_jobs} - set(rates))
            if unmatched:
                raise AnchorError(f"--match-anchor: the anchor has no rates for {', '.join(unmatched)} "
                                  + ("(run without --report-only first)" if report_only else "(its jobs failed)"))
            for codec in test_codecs:
                codec.match_points(match_metric, rates)
        jobs = plan_jobs(sequences, codecs, first_frame, frames)
        summary = run(jobs)
        if anchor_run is not None:  # the anchor's jobs ran in the first pass, not skipped in the second
            summary.skipped -= anchor_run.computed
            summary.computed += anchor_run.computed
            summary.failed[:0] = anchor_run.failed
            summary.seconds += anchor_run.seconds
        points = []
        for job in jobs:
            stored = store.get(job.key)
            if stored is not None:
                points.append(stored.result.rate_point_row(hm_peak))
    frames_note = f"Frames {first_frame}..{first_frame + frames - 1} of each sequence ({frames} per sequence)."
    if len(points) < len(jobs):
        frames_note += f" **Incomplete: {len(jobs) - len(points)} of {len(jobs)} jobs have no result.**"
    comparison, plots = write_reports(
        points, anchor.name, [c.name for c in test_codecs], out, method, axis,
        {c.name: c.describe() for c in codecs}, "hm" if hm_peak else "max", frames_note,
    )
    if summary.failed:
        first_job, first_error = summary.failed[0]
        raise JobsFailedError(
            f"{len(summary.failed)} of {summary.total} jobs failed twice and are left out of {out} "
            f"(first: {first_job.label}: {first_error}); rerun the same command to retry them"
        )
    return EvalOutputs(summary, points, comparison, out, plots)


def _select_codec(points: list[RatePoint], wanted: str | None, where: str, role: str) -> str:
    codecs = list(dict.fromkeys(p.codec for p in points))
    if wanted is not None:
        if wanted not in codecs:
            raise EvalError(f"{where} has no results of codec {wanted!r} (it has {', '.join(codecs)})")
        return wanted
    if len(codecs) != 1:
        raise EvalError(f"{where} holds codecs {', '.join(codecs)}: name the {role} codec")
    return codecs[0]


def bdrate_tables(
    anchor_table: str | Path,
    test_table: str | Path,
    *,
    anchor_codec: str | None = None,
    test_codecs: list[str] | None = None,
    method: str = "pchip",
) -> tuple[Comparison, list[RatePoint]]:
    """BD-rates of the test table's codecs against the anchor table's codec (the same file may hold both)."""
    if method not in BD_METHODS:
        raise EvalError(f"unknown BD-rate method {method!r} (choose from {', '.join(BD_METHODS)})")
    anchor_points = read_points(anchor_table)
    anchor = _select_codec(anchor_points, anchor_codec, str(anchor_table), "anchor")
    same_file = Path(anchor_table).resolve() == Path(test_table).resolve()
    test_points = anchor_points if same_file else read_points(test_table)
    available = [c for c in dict.fromkeys(p.codec for p in test_points) if c != anchor]
    tests = test_codecs or available
    missing = [t for t in tests if t not in available]
    if missing or not tests:
        raise EvalError(f"{test_table} has no results of test codec(s) {', '.join(missing) or '(any)'} "
                        f"besides the anchor {anchor}")
    points = [p for p in anchor_points if p.codec == anchor]
    points += [p for p in test_points if p.codec in tests]
    return compare_all(points, anchor, tests, method), points


def plot_tables(tables: list[str | Path], out_dir: str | Path, axis: str = "bpp") -> list[Path]:
    """RD curves of every codec found in the given points.csv files."""
    points: list[RatePoint] = []
    for table in tables:
        points.extend(read_points(table))
    return plot_curves(points, out_dir, axis)
