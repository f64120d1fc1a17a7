"""`vcodec eval`, `vcodec bdrate` and `vcodec plot`: a typer layer over vcodec.eval's library functions.

The main command line mounts them with `register(app)`. Malformed options raise `OptionError`; every
other failure an `EvalError`: both are `VcodecError`s, printed on one line by `vcodec.cli.main`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from vcodec.eval.bdrate import BD_METHODS
from vcodec.eval.codecs import DEFAULT_QPS, Codec, CsvCodec, HmBitstreamCodec, HmLogCodec, X265Codec
from vcodec.eval.evaluate import bdrate_tables, evaluate, plot_tables
from vcodec.eval.report import markdown_table, write_bdrate_csv, write_table
from vcodec.eval.results import write_points
from vcodec.eval.sequences import Sequence, class_from_directory, find_sequences, load_class_list
from vcodec.eval.vcodec_codec import DEFAULT_LAMBDAS, MATCH_METRICS, VcodecCodec
from vcodec.io import OptionError

ANCHOR_KINDS: tuple[str, ...] = ("x265", "hm-logs", "hm-bitstreams", "csv")


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_numbers(text: str, kind: type, option: str) -> list:  # type: ignore[type-arg]
    try:
        values = [kind(item) for item in _split(text)]
    except ValueError:
        raise OptionError(f"{option} {text!r}: expected comma-separated numbers") from None
    if not values:
        raise OptionError(f"{option} is empty")
    return values


def parse_anchor(text: str, x265_preset: str = "slow", qps: tuple[int, ...] = DEFAULT_QPS) -> Codec:
    """`x265`, `hm-logs:DIR`, `hm-bitstreams:DIR` or `csv:FILE`."""
    kind, _, path = text.partition(":")
    kind = kind.strip().lower()
    if kind not in ANCHOR_KINDS:
        raise OptionError(f"--anchor {text!r}: expected x265, hm-logs:DIR, hm-bitstreams:DIR or csv:FILE")
    if kind == "x265":
        if path:
            raise OptionError("--anchor x265 takes no path (use --x265-preset and --qps)")
        return X265Codec(preset=x265_preset, qps=tuple(qps))
    if not path:
        raise OptionError(f"--anchor {kind} needs a path: --anchor {kind}:PATH")
    if kind == "hm-logs":
        return HmLogCodec(path)
    if kind == "hm-bitstreams":
        return HmBitstreamCodec(path)
    return CsvCodec(path)


def _sequences(ctc: str | None, classes: str | None, root: str | None, class_dirs: list[str],
               needed: int) -> list[Sequence]:
    if not ctc and not class_dirs:
        raise OptionError("name the sequences: --ctc LIST --classes A,B --root DIR, or --class-dir DIR")
    sequences: list[Sequence] = []
    if ctc:
        if not root:
            raise OptionError("--ctc needs --root DIR, the folder that holds the sequences")
        class_list = load_class_list(ctc)
        wanted = _split(classes) if classes else list(class_list.classes)
        sequences += find_sequences(class_list, wanted, root, needed)
    elif classes or root:
        raise OptionError("--classes and --root go with --ctc")
    for directory in class_dirs:
        sequences += class_from_directory(directory, needed)
    names = [s.name for s in sequences]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise OptionError(f"sequence name(s) {', '.join(duplicates)} appear twice")
    return sequences


QuietOption = Annotated[bool, typer.Option("-q", "--quiet", help="No progress and no table on the terminal.")]
MethodOption = Annotated[str, typer.Option("--method", help=f"BD-rate interpolation: {', '.join(BD_METHODS)}.")]
AxisOption = Annotated[str, typer.Option("--rate-axis", help="Plot rate as bpp or kbps.")]


def eval_command(
    output: Annotated[str, typer.Option("-o", "--output", help="Output folder (points.csv, bdrate.csv, ...).")],
    ctc: Annotated[str | None, typer.Option("--ctc", help="Class list: hevc, jvet or a .toml file.")] = None,
    classes: Annotated[str | None, typer.Option("--classes", help="Classes, e.g. B,C,D (default all).")] = None,
    root: Annotated[str | None, typer.Option("--root", help="Folder holding the CTC sequences.")] = None,
    class_dir: Annotated[list[str] | None, typer.Option("--class-dir", help="A folder of sequences as one "
                                                        "user-made class (repeatable).")] = None,
    frames: Annotated[int, typer.Option("--frames", "-n", help="Frames per sequence (1: the first).")] = 1,
    first_frame: Annotated[int, typer.Option("--first-frame", help="First frame coded.")] = 0,
    lambdas: Annotated[str, typer.Option("--lambdas", help="vcodec rate points.")] = ",".join(
        f"{v:g}" for v in DEFAULT_LAMBDAS),
    preset: Annotated[str, typer.Option("--preset", help="vcodec encoder preset(s), e.g. fast,medium.")] = "medium",
    arch: Annotated[str, typer.Option("--arch", help="vcodec decoder architecture, or auto (the preset's candidates).")] = "auto",
    iterations: Annotated[int | None, typer.Option("--iterations", help="Override the preset's iterations.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu or cuda (GPU jobs ask Dask for GPU=1).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Training seed.")] = None,
    anchor: Annotated[str, typer.Option("--anchor", help="x265, hm-logs:DIR, hm-bitstreams:DIR or csv:FILE.")] = "x265",
    x265_preset: Annotated[str, typer.Option("--x265-preset", help="x265 preset of the anchor.")] = "slow",
    qps: Annotated[str, typer.Option("--qps", help="x265 anchor QPs.")] = ",".join(str(q) for q in DEFAULT_QPS),
    method: MethodOption = "pchip",
    peak: Annotated[str, typer.Option("--peak", help="PSNR peak: hm (255*2^(bd-8)) or max (2^bd-1).")] = "hm",
    rate_axis: AxisOption = "bpp",
    workers: Annotated[int | None, typer.Option("--workers", "-j", help="Local worker processes "
                                                "(0: run in this process).")] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="Compute threads per local worker "
                                                "(default: cores / workers).")] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="Dask scheduler, tcp://host:8786.")] = None,
    store: Annotated[str | None, typer.Option("--store", help="Results store (default OUTPUT/results.sqlite).")] = None,
    report_only: Annotated[bool, typer.Option("--report-only", help="Run nothing: write the reports from "
                                              "what the store holds.")] = False,
    match_anchor: Annotated[bool, typer.Option("--match-anchor", help="Code each sequence at the anchor's own "
                                               "rate points (rate control; --lambdas is not used).")] = False,
    match_metric: Annotated[str, typer.Option("--match-metric", help="With --match-anchor: match the anchor's "
                                              "bpp (default) or its PSNR-YUV (psnr).")] = "bpp",
    quiet: QuietOption = False,
) -> None:
    """Code sequences with vcodec and an HEVC anchor; write per-class BD-rates, tables and RD plots.

    Resumable: rerunning the same command skips every job already in the results store.
    """
    if peak not in ("hm", "max"):
        raise OptionError(f"--peak {peak!r}: expected hm or max")
    if match_metric not in MATCH_METRICS:
        raise OptionError(f"--match-metric {match_metric!r}: expected {' or '.join(MATCH_METRICS)}")
    if match_metric != "bpp" and not match_anchor:
        raise OptionError("--match-metric goes with --match-anchor")
    if workers is not None and workers < 0:
        raise OptionError("--workers must be 0 or more")
    if threads is not None and threads < 1:
        raise OptionError("--threads must be 1 or more")
    sequences = _sequences(ctc, classes, root, class_dir or [], first_frame + frames)
    anchor_codec = parse_anchor(anchor, x265_preset, tuple(parse_numbers(qps, int, "--qps")))
    lambda_values = tuple(parse_numbers(lambdas, float, "--lambdas"))
    overrides = {"iterations": iterations, "device": device, "seed": seed}
    tests: list[Codec] = [VcodecCodec(arch, p, lambda_values, dict(overrides)) for p in _split(preset)]
    if not tests:
        raise OptionError("--preset is empty")
    outputs = evaluate(
        sequences, tests, anchor_codec, output, first_frame=first_frame, frames=frames, method=method,
        hm_peak=peak == "hm", axis=rate_axis, workers=workers, threads=threads, scheduler=scheduler,
        store_path=store, quiet=quiet, report_only=report_only, match_anchor=match_anchor,
        match_metric=match_metric,
    )
    if not quiet:
        summary = outputs.summary
        print(f"{summary.computed} jobs run, {summary.skipped} reused from the store, in {summary.seconds:.1f} s"
              + (f"; {summary.total - summary.skipped} not run (--report-only)" if report_only else ""),
              file=sys.stderr)
        print((Path(output) / "table.md").read_text())


def bdrate_command(
    anchor_table: Annotated[str, typer.Argument(help="points.csv holding the anchor's results.")],
    test_table: Annotated[str, typer.Argument(help="points.csv holding the test codec's results.")],
    anchor_codec: Annotated[str | None, typer.Option("--anchor-codec", help="Anchor codec name, if the "
                                                     "table holds several.")] = None,
    test_codec: Annotated[list[str] | None, typer.Option("--test-codec", help="Test codec name(s) "
                                                         "(default: all but the anchor).")] = None,
    method: MethodOption = "pchip",
    output: Annotated[str | None, typer.Option("-o", "--output", help="Also write bdrate.csv and table.md "
                                               "into this folder.")] = None,
) -> None:
    """BD-rates (Y, U, V, YUV) of two result tables: per sequence, per class and overall."""
    comparison, points = bdrate_tables(anchor_table, test_table, anchor_codec=anchor_codec,
                                       test_codecs=test_codec or None, method=method)
    if output:
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        write_points(out / "points.csv", points)
        write_bdrate_csv(out / "bdrate.csv", comparison)
        write_table(out / "table.md", comparison, points=points)
    print(markdown_table(comparison, points=points))


def plot_command(
    tables: Annotated[list[str], typer.Argument(help="points.csv file(s).")],
    output: Annotated[str, typer.Option("-o", "--output", help="Folder for the PNG files.")],
    rate_axis: AxisOption = "bpp",
    quiet: QuietOption = False,
) -> None:
    """RD curves (PSNR-YUV against rate) per sequence and per class, every codec on the same axes."""
    written = plot_tables(list(tables), output, rate_axis)
    if not quiet:
        print(f"wrote {len(written)} plots to {output}", file=sys.stderr)


def register(app: typer.Typer) -> None:
    """Add `eval`, `bdrate` and `plot` to a typer app (the main `vcodec` command line)."""
    app.command("eval")(eval_command)
    app.command("bdrate")(bdrate_command)
    app.command("plot")(plot_command)


app = typer.Typer(
    name="vcodec-eval",
    help="Evaluate vcodec against HEVC anchors: eval, bdrate, plot.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
register(app)
