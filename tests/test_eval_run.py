"""`vcodec eval` end to end on a user-made class of tiny clips: vcodec against the x265 anchor, locally,
killed and resumed, and on a Dask LocalCluster."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from vcodec.eval.__main__ import main
from vcodec.eval.codecs import X265Codec
from vcodec.eval.evaluate import evaluate
from vcodec.eval.results import POINT_COLUMNS
from vcodec.eval.sequences import class_from_directory, write_sample_class
from vcodec.eval.vcodec_codec import VcodecCodec

from process_events import wait_until

LAMBDAS = "0.0004,0.001,0.004,0.01"
CONTRACT_COLUMNS = ["sequence", "class", "codec", "rate_point", "frames", "bits", "bpp", "psnr_y", "psnr_u", "psnr_v",
                    "psnr_yuv", "encode_seconds"]


@pytest.fixture(scope="module")
def clip_class(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clips") / "tiny"
    write_sample_class(folder, ["astronaut", "coffee"], 64, 48, frames=1)
    return folder


def _eval_args(clip_class: Path, out: Path, iterations: int, lambdas: str = LAMBDAS, workers: int = 2) -> list[str]:
    return ["eval", "--class-dir", str(clip_class), "-o", str(out), "--preset", "fast", "--iterations",
            str(iterations), "--lambdas", lambdas, "--workers", str(workers), "--threads", "1", "--seed", "1"]


@pytest.fixture(scope="module")
def evaluated(clip_class: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "out"
    assert main(_eval_args(clip_class, out, iterations=20)) == 0
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_points_table_follows_the_contract(evaluated: Path) -> None:
    with open(evaluated / "points.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert header[: len(CONTRACT_COLUMNS)] == CONTRACT_COLUMNS and tuple(header) == POINT_COLUMNS
    rows = _rows(evaluated / "points.csv")
    assert len(rows) == 2 * 4 * 2
    assert {r["codec"] for r in rows} == {"x265-slow", "vcodec-auto-fast"}
    assert {r["class"] for r in rows} == {"tiny"}
    for row in rows:
        assert int(row["bits"]) > 0 and row["frames"] == "1"
        assert float(row["bpp"]) == pytest.approx(int(row["bits"]) / (64 * 48), abs=1e-6)
        yuv = (6 * float(row["psnr_y"]) + float(row["psnr_u"]) + float(row["psnr_v"])) / 8
        assert float(row["psnr_yuv"]) == pytest.approx(yuv, abs=1e-5)
        assert row["ms_ssim_y"] == ""  # 64x48 is too small for 5-scale MS-SSIM
    vcodec_rows = [r for r in rows if r["codec"] == "vcodec-auto-fast"]
    assert {r["rate_point"] for r in vcodec_rows} == set(LAMBDAS.split(","))
    assert all(0 < int(r["param_bits"]) < int(r["bits"]) for r in vcodec_rows)
    assert all(r["param_bits"] == "" for r in rows if r["codec"] == "x265-slow")
    assert {r["archs"] for r in vcodec_rows} == {"tiny:1"}  # the fast preset's one candidate, one frame each
    assert all(r["archs"] == "" for r in rows if r["codec"] == "x265-slow")


def _metrics_named(reason: str) -> set[str]:
    """`Y/U: no overlap; V: ...` -> {Y, U, V}."""
    return {m for part in reason.split("; ") if part for m in part.split(": ", 1)[0].split("/")}


def test_bdrate_table_has_sequences_class_and_overall(evaluated: Path) -> None:
    rows = _rows(evaluated / "bdrate.csv")
    assert [(r["level"], r["name"]) for r in rows] == [
        ("sequence", "astronaut_64x48_30_8bit_420"), ("sequence", "coffee_64x48_30_8bit_420"),
        ("class", "tiny"), ("overall", "overall"),
    ]
    for row in rows:
        named = _metrics_named(row["na_reason"])
        for metric in ("y", "u", "v", "yuv"):
            # A number, or n/a with its reason: never both, never neither.
            assert (row[f"bd_rate_{metric}"] == "") == (metric.upper() in named)
        assert row["anchor_codec"] == "x265-slow" and row["test_codec"] == "vcodec-auto-fast"
    table = (evaluated / "table.md").read_text()
    assert "# BD-rate against x265-slow" in table and "| **Average** | 2 |" in table
    assert "mean of its frames' PSNRs" in table and "sum of the real bits" in table
    assert "preset slow" in table and "vcodec-auto-fast" in table


def test_plots_per_sequence_and_class(evaluated: Path) -> None:
    plots = sorted(p.name for p in (evaluated / "plots").iterdir())
    assert plots == ["class_tiny.png", "tiny_astronaut_64x48_30_8bit_420.png", "tiny_coffee_64x48_30_8bit_420.png"]
    assert all((evaluated / "plots" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots)


def test_rerun_reuses_every_job(clip_class: Path, evaluated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (evaluated / "points.csv").read_text()
    assert main(_eval_args(clip_class, evaluated, iterations=20)) == 0
    assert "0 jobs run, 16 reused from the store" in capsys.readouterr().err
    assert (evaluated / "points.csv").read_text() == before


def test_report_only_runs_nothing_and_says_what_is_missing(clip_class: Path, evaluated: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    args = _eval_args(clip_class, tmp_path / "partial", iterations=20, lambdas=LAMBDAS + ",0.02")
    assert main([*args, "--store", str(evaluated / "results.sqlite"), "--report-only"]) == 0
    assert "0 jobs run, 16 reused from the store" in capsys.readouterr().err
    assert "Incomplete: 2 of 18 jobs have no result" in (tmp_path / "partial" / "table.md").read_text()
    assert len(_rows(tmp_path / "partial" / "points.csv")) == 16


def test_missing_options_and_files_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "-o", str(tmp_path / "o")]) == 2
    assert main(["eval", "--ctc", "hevc", "--classes", "D", "--root", str(tmp_path), "-o", str(tmp_path / "o")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(errors) == 2 and "4 sequence(s) of hevc class(es) D missing" in errors[1]
    assert not (tmp_path / "o").exists()  # nothing ran


def _stored(store: Path) -> dict[str, float]:
    with sqlite3.connect(store) as db:
        return dict(db.execute("SELECT key, finished_at FROM results").fetchall())


def _stored_count(store: Path) -> int:
    """Results in a store another process may still be creating (0 before its table exists)."""
    if not store.exists():  # (connecting would create it)
        return 0
    try:
        return len(_stored(store))
    except sqlite3.Error:
        return 0


def test_killed_run_resumes_without_recomputing(clip_class: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()  # watched for the store's writes from the start
    store = out / "results.sqlite"
    args = _eval_args(clip_class, out, iterations=60, lambdas="0.001,0.01", workers=1)
    process = subprocess.Popen([sys.executable, "-m", "vcodec.eval", *args, "-q"], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # 8 anchor jobs come first; kill once the first vcodec job is stored too.
        wait_until(lambda: _stored_count(store) >= 9, out, process, 300, "9 jobs were stored")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    done = _stored(store)
    assert 9 <= len(done) < 12, "the run was not killed while jobs were left"

    assert main([*args]) == 0
    assert f"{12 - len(done)} jobs run, {len(done)} reused from the store" in capsys.readouterr().err
    after = _stored(store)
    assert len(after) == 12
    assert all(after[key] == finished for key, finished in done.items())  # nothing finished was redone
    assert len(_rows(out / "points.csv")) == 12


@pytest.mark.slow  # Dask is an optional scheduler; the local run is tested above
def test_same_eval_on_a_dask_local_cluster(clip_class: Path, evaluated: Path, tmp_path: Path) -> None:
    """Every row, vcodec's and x265's, equals the local run's but for the time it took. The worker runs one
    job at a time on one torch thread, as the local run's workers do (--threads 1): training draws from
    torch's global random generator, and its sums depend on the thread count."""
    import torch
    from distributed import LocalCluster

    sequences = class_from_directory(clip_class, 1)
    test = VcodecCodec("auto", "fast", (0.0004, 0.001, 0.004, 0.01), {"iterations": 20, "seed": 1})
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
            outputs = evaluate(sequences, [test], X265Codec(), tmp_path / "dask", scheduler=cluster.scheduler_address,
                               quiet=True)
    finally:
        torch.set_num_threads(previous_threads)
    assert outputs.summary.computed == 16 and not outputs.summary.failed
    dask_rows = {(r["sequence"], r["codec"], r["rate_point"]): r for r in _rows(tmp_path / "dask" / "points.csv")}
    local_rows = {(r["sequence"], r["codec"], r["rate_point"]): r for r in _rows(evaluated / "points.csv")}
    assert dask_rows.keys() == local_rows.keys()
    assert {codec for _, codec, _ in dask_rows} == {"x265-slow", "vcodec-auto-fast"}
    compared = [column for column in POINT_COLUMNS if column != "encode_seconds"]
    for key, row in dask_rows.items():
        assert {c: row[c] for c in compared} == {c: local_rows[key][c] for c in compared}, key
    assert (tmp_path / "dask" / "table.md").is_file() and (tmp_path / "dask" / "plots" / "class_tiny.png").is_file()


def test_match_anchor_codes_at_the_anchors_rates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--match-anchor: the anchor runs first, then vcodec codes the sequence at each of the anchor's bpp
    points through rate control; the rate points name those targets and the coded rates follow them."""
    folder = tmp_path / "one"
    write_sample_class(folder, ["astronaut"], 64, 48, frames=1)
    out = tmp_path / "matched"
    args = ["eval", "--class-dir", str(folder), "-o", str(out), "--preset", "fast", "--iterations", "120",
            "--qps", "27,32,37", "--workers", "0", "--seed", "1", "-q"]
    assert main([*args, "--report-only", "--match-anchor"]) == 1
    assert "the anchor has no rates for astronaut" in capsys.readouterr().err
    assert main([*args, "--match-anchor"]) == 0
    rows = _rows(out / "points.csv")
    anchor = sorted(float(r["bpp"]) for r in rows if r["codec"] == "x265-slow")
    matched = sorted((float(r["rate_point"].removeprefix("bpp=")), float(r["bpp"]))
                     for r in rows if r["codec"] == "vcodec-auto-fast")
    assert len(anchor) == 3 and [t for t, _ in matched] == pytest.approx(anchor, rel=1e-5)
    # rate control on a 64x48 frame at 120 iterations is coarse (its accuracy on real frames is measured in
    # docs/results/rate-control-2026-11-24.md), but the coded rates follow the targets' order and size; the
    # training lands elsewhere on another CPU's float kernels (+36 % at the highest target on an AMD EPYC)
    assert [bpp for _, bpp in matched] == sorted(bpp for _, bpp in matched)
    assert all(abs(bpp / target - 1) < 0.5 for target, bpp in matched), matched
    assert "the anchor's rates" in (out / "table.md").read_text()
    # --match-metric psnr: the anchor's PSNR-YUVs as targets (the anchor's results are reused). A probe of
    # 120 iterations' 15 % says nothing of a PSNR; 400 iterations make the search meaningful at 64x48
    assert main([*args, "--match-anchor", "--match-metric", "psnr", "-o", str(tmp_path / "psnr"),
                 "--store", str(out / "results.sqlite"), "--iterations", "400"]) == 0
    rows = _rows(tmp_path / "psnr" / "points.csv")
    anchor = sorted(float(r["psnr_yuv"]) for r in rows if r["codec"] == "x265-slow")
    matched = sorted((float(r["rate_point"].removeprefix("psnr=")), float(r["psnr_yuv"]))
                     for r in rows if r["codec"] == "vcodec-auto-fast")
    assert [t for t, _ in matched] == pytest.approx(anchor, abs=1e-3)
    assert [psnr for _, psnr in matched] == sorted(psnr for _, psnr in matched)
    assert all(abs(psnr - target) < 1.0 for target, psnr in matched), matched
    assert main([*args, "--match-metric", "psnr"]) == 2
    assert main([*args, "--match-anchor", "--match-metric", "ssim"]) == 2
    assert "--match-metric" in capsys.readouterr().err
