#!/usr/bin/env python3
"""Warm start against cold starts on a panning, zooming clip (vcodec.samples.pan_zoom_frames).

    scripts/bench_warm_start.py run cold --preset fast                 # frames 0..7 from scratch
    scripts/bench_warm_start.py run net-250 --preset fast --variant network --warm-iterations 250
    scripts/bench_warm_start.py run all-250 --preset fast --variant all --warm-iterations 250
    scripts/bench_warm_start.py run cold-250 --preset fast --iterations 250   # cold at a warm frame's budget
    scripts/bench_warm_start.py compare cold net-250 all-250 cold-250

A warm label codes frames 1..7 as one chain: frame 1 starts from the cold run's float model of frame 0,
frame k from the warm run's own frame k-1. `compare` gives, over frames 1..7, the iterations and summed
encode seconds per frame and the BD-rate (pchip, PSNR-YUV 6:1:1 averaged over the frames, rate = their
summed real bitstream bits) of each label against the first. Rates are real bitstream sizes and PSNRs
come from the decoded frames. Points (JSON lines) and float states are kept under --store, so an
interrupted run resumes. Run old and new side by side for timings: the machine's load moves them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from vcodec.config import load_arch, load_config  # noqa: E402
from vcodec.encoder.encode import encode_frame_chained  # noqa: E402
from vcodec.encoder.warm_start import WarmState  # noqa: E402
from vcodec.eval.bdrate import bd_rate  # noqa: E402
from vcodec.samples import pan_zoom_frames  # noqa: E402

LAMBDAS = "0.0001,0.0004,0.001,0.004"
COLD = "cold"


def _rows(store: Path, label: str) -> list[dict]:
    path = store / f"{label}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _state_path(store: Path, label: str, lmbda: float, frame: int) -> Path:
    return store / "states" / f"{label}_{lmbda:g}_{frame}.pt"


def _save_state(path: Path, state: WarmState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"arch": state.arch.name, "height": state.height, "width": state.width,
                "parameters": state.parameters}, path)


def _load_state(path: Path) -> WarmState:
    saved = torch.load(path)
    return WarmState(load_arch(saved["arch"]), saved["height"], saved["width"], saved["parameters"])


def _wait_for(path: Path, minutes: float = 60.0) -> Path:
    """A warm run started beside the cold one waits for the cold frame 0 it starts from."""
    deadline = time.monotonic() + 60 * minutes
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} did not appear: run the cold label first")
        time.sleep(10)
    return path


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.split("x"))
    clip = pan_zoom_frames(width, height, args.frames, 8, args.photo)
    warm = not args.label.startswith(COLD)  # "cold-250" with --iterations 250: cold at a warm frame's time
    overrides: dict[str, object] = {"warm_start": args.variant if warm else "off"}
    if args.iterations:
        overrides["iterations"] = args.iterations
    if warm:
        cold_iterations = args.iterations or load_config(args.arch, args.preset).preset.iterations
        overrides.update(warm_fraction=args.warm_iterations / cold_iterations, warm_chain=args.frames)
        if args.warm_lr:
            overrides["warm_learning_rate"] = args.warm_lr
        if args.warm_latent_lr:
            overrides["warm_latent_learning_rate"] = args.warm_latent_lr
        if args.warm_temperature:
            overrides["warm_softround_temperature"] = [float(t) for t in args.warm_temperature.split(",")]
    cfg = load_config(args.arch, args.preset, **overrides)
    done = {(row["lmbda"], row["frame"]) for row in _rows(args.store, args.label)}
    args.store.mkdir(parents=True, exist_ok=True)
    lambdas = [float(v) for v in args.lambdas.split(",")]
    for number in range(0 if not warm else 1, args.frames):  # frame by frame: warm runs can start early
        for lmbda in lambdas:
            if (lmbda, number) in done:
                continue
            previous = None
            if warm:
                source = COLD if number == 1 else args.label
                previous = _load_state(_wait_for(_state_path(args.store, source, lmbda, number - 1)))
            encoded, trained = encode_frame_chained(clip[number], lmbda, cfg, previous)
            _save_state(_state_path(args.store, args.label, lmbda, number), trained)
            iterations = cfg.preset.warm_iterations if warm else cfg.preset.iterations
            row = {"label": args.label, "lmbda": lmbda, "frame": number, "size": args.size, "photo": args.photo,
                   "preset": args.preset, "overrides": overrides, "arch": encoded.arch_name,
                   "iterations": iterations, "bits": encoded.bits, "psnr_yuv": encoded.psnr.yuv,
                   "psnr_y": encoded.psnr.y, "seconds": encoded.seconds}
            with (args.store / f"{args.label}.jsonl").open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(json.dumps(row), file=sys.stderr, flush=True)


@dataclasses.dataclass
class Curve:
    rates: list[float]
    psnrs: list[float]
    seconds: float
    iterations: float
    frames: int


def _curve(rows: list[dict], first: int, last: int) -> Curve | None:
    """Over frames first..last: per lambda summed bits and mean PSNR-YUV; seconds summed over all lambdas
    and divided by their number (seconds per frame range and rate point)."""
    by_lambda: dict[float, list[dict]] = {}
    for row in rows:
        if first <= row["frame"] <= last:
            by_lambda.setdefault(row["lmbda"], []).append(row)
    wanted = last - first + 1
    complete = {k: v for k, v in by_lambda.items() if len(v) == wanted}
    if not complete:
        return None
    lambdas = sorted(complete)
    picked = [row for k in lambdas for row in complete[k]]
    return Curve([sum(r["bits"] for r in complete[k]) for k in lambdas],
                 [statistics.fmean(r["psnr_yuv"] for r in complete[k]) for k in lambdas],
                 sum(r["seconds"] for r in picked) / len(lambdas), statistics.fmean(r["iterations"] for r in picked),
                 wanted)


def compare(args: argparse.Namespace) -> None:
    curves = {label: _curve(_rows(args.store, label), args.first, args.last) for label in args.labels}
    anchor = curves[args.labels[0]]
    print(f"frames {args.first}-{args.last}; BD-rate PSNR-YUV (pchip) against {args.labels[0]}; time: encode "
          "seconds of those frames, mean over the rate points")
    print("| label | iterations / frame | encode s | time vs anchor | BD-rate YUV | points (kbit, dB) |")
    print("|---|---|---|---|---|---|")
    for label, curve in curves.items():
        if curve is None:
            print(f"| {label} | - | - | - | incomplete | |")
            continue
        bd = bd_rate(anchor.rates, anchor.psnrs, curve.rates, curve.psnrs) if anchor else None
        points = " ".join(f"{r / 1000:.1f}/{p:.2f}" for r, p in zip(curve.rates, curve.psnrs))
        ratio = f"{curve.seconds / anchor.seconds:.2f}x" if anchor else "-"
        bd_text = "-" if bd is None else (f"{bd.value:+.1f} %" if bd.available else f"n/a ({bd.reason})")
        print(f"| {label} | {curve.iterations:.0f} | {curve.seconds:.0f} | {ratio} | {bd_text} | {points} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    runner = commands.add_parser("run", help="code the clip's frames under a label")
    runner.add_argument("label", help=f"'{COLD}...' for cold starts (frames 0..N-1); any other name is warm")
    runner.add_argument("--preset", default="fast")
    runner.add_argument("--arch", default="auto")
    runner.add_argument("--iterations", type=int, default=None, help="cold iterations (default: the preset's)")
    runner.add_argument("--variant", choices=("network", "all"), default="network")
    runner.add_argument("--warm-iterations", type=int, default=250)
    runner.add_argument("--warm-lr", type=float, default=None, help="network learning rate of warm frames")
    runner.add_argument("--warm-latent-lr", type=float, default=None, help="latent learning rate of warm frames")
    runner.add_argument("--warm-temperature", default=None, help="soft-rounding start,end of warm frames")
    runner.add_argument("--lambdas", default=LAMBDAS)
    runner.add_argument("--size", default="416x240")
    runner.add_argument("--frames", type=int, default=8)
    runner.add_argument("--photo", default="astronaut")
    runner.add_argument("--threads", type=int, default=1)
    runner.add_argument("--store", type=Path, default=Path("out/warm-start"))
    comparer = commands.add_parser("compare", help="table of labels against the first")
    comparer.add_argument("labels", nargs="+")
    comparer.add_argument("--first", type=int, default=1)
    comparer.add_argument("--last", type=int, default=7)
    comparer.add_argument("--store", type=Path, default=Path("out/warm-start"))
    args = parser.parse_args()
    run(args) if args.command == "run" else compare(args)


if __name__ == "__main__":
    main()
