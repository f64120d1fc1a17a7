#!/usr/bin/env python3
"""Screen decoder-architecture variants frame by frame, several seeds, before spending a class run on one.

Each job trains and codes one sample-class frame (416x240, first frame of a scikit-image photo) at one
lambda and seed with a preset and an architecture, the latter changed by `--set FIELD=VALUE` overrides
(any ArchConfig or PresetConfig field, values in JSON), and appends one JSON line: real bitstream bits
(parameters and latents apart) and the PSNRs of the decoded frame. Resumable: a (label, photo, lambda,
seed) already in OUT is skipped. `summary` compares every label with a base label, frame by frame.

    .venv/bin/python scripts/arch_screen.py run out/screen.jsonl small8 --arch small \
        --set arm_context=8 --set 'arm_hidden=[8,8]' --lambdas 0.004,0.001 --seeds 0,1
    .venv/bin/python scripts/arch_screen.py run out/screen.jsonl small --arch small --lambdas 0.004,0.001 --seeds 0,1
    .venv/bin/python scripts/arch_screen.py summary out/screen.jsonl small
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

PHOTOS = ("astronaut", "coffee", "chelsea")
WIDTH, HEIGHT = 416, 240


def _job(args: tuple[str, str, str, dict, str, float, int]) -> dict:
    label, preset, arch, overrides, photo, lmbda, seed = args
    import torch

    torch.set_num_threads(1)
    from vcodec.config import load_config
    from vcodec.encoder.encode import encode_frame_report
    from vcodec.samples import sample_frames

    cfg = load_config(arch, preset, seed=seed, **overrides)
    frame = sample_frames(WIDTH, HEIGHT, 1, 8, photo)[0]
    encoded = encode_frame_report(frame, lmbda, cfg)
    return {"label": label, "photo": photo, "lmbda": lmbda, "seed": seed, "preset": preset, "arch": encoded.arch_name,
            "overrides": overrides, "bits": encoded.bits, "parameter_bits": encoded.parameter_bits,
            "latent_bits": encoded.latent_bits, "psnr_y": encoded.psnr.y, "psnr_u": encoded.psnr.u,
            "psnr_v": encoded.psnr.v, "psnr_yuv": encoded.psnr.yuv, "seconds": encoded.seconds}


def run(args: argparse.Namespace) -> None:
    overrides = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    done = set()
    if args.out.exists():
        done = {(r["label"], r["photo"], r["lmbda"], r["seed"]) for r in map(json.loads, args.out.open())}
    jobs = [(args.label, args.preset, args.arch, overrides, photo, lmbda, seed)
            for lmbda in args.lambdas for photo in args.photos for seed in args.seeds
            if (args.label, photo, lmbda, seed) not in done]
    print(f"{len(jobs)} jobs ({len(done)} rows already in {args.out})", file=sys.stderr)
    with ProcessPoolExecutor(args.workers) as pool:
        for count, row in enumerate(pool.map(_job, jobs), 1):
            with args.out.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(f"[{count}/{len(jobs)}] {row['label']} {row['photo']} {row['lmbda']:g} seed {row['seed']}: "
                  f"{row['bits']} bits, {row['psnr_yuv']:.3f} dB", file=sys.stderr, flush=True)


def rd_slopes(rows: list[dict], base: str) -> dict[tuple[str, int], float]:
    """Per (photo, seed): the base label's log-rate per dB of PSNR-YUV between its lowest and highest lambda
    (a local RD slope, to turn a PSNR change into the rate it is worth)."""
    points: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for row in rows:
        if row["label"] == base:
            points.setdefault((row["photo"], row["seed"]), []).append((row["psnr_yuv"], math.log(row["bits"])))
    return {key: (max(pts)[1] - min(pts)[1]) / (max(pts)[0] - min(pts)[0])
            for key, pts in points.items() if len(pts) > 1 and max(pts)[0] > min(pts)[0]}


def rate_at_equal_quality(row: dict, base: dict, slope: float) -> float:
    """Per cent more bits than the base at the base's PSNR-YUV, moving along the local RD slope: a
    one-point BD-rate (negative: the row is better)."""
    return 100 * (math.exp(math.log(row["bits"] / base["bits"]) - slope * (row["psnr_yuv"] - base["psnr_yuv"])) - 1)


def summary(args: argparse.Namespace) -> None:
    rows = [json.loads(line) for line in args.out.open()]
    by_key = {(r["label"], r["photo"], r["lmbda"], r["seed"]): r for r in rows}
    slopes = rd_slopes(rows, args.base)
    mean_slope = statistics.mean(slopes.values()) if slopes else 0.0
    labels = sorted({r["label"] for r in rows} - {args.base})
    print("| label | photo | lambda | seed | bits vs base | PSNR-YUV vs base | rate at equal PSNR-YUV |")
    print("|---|---|---|---|---|---|---|")
    for label in labels:
        changes = []
        for (row_label, photo, lmbda, seed), row in sorted(by_key.items(), key=lambda item: (-item[0][2], item[0][1:])):
            base = by_key.get((args.base, photo, lmbda, seed))
            if row_label != label or base is None:
                continue
            change = rate_at_equal_quality(row, base, slopes.get((photo, seed), mean_slope))
            changes.append(change)
            print(f"| {label} | {photo} | {lmbda:g} | {seed} | {100 * (row['bits'] / base['bits'] - 1):+.1f} % | "
                  f"{row['psnr_yuv'] - base['psnr_yuv']:+.3f} dB | {change:+.1f} % |")
        if changes:
            spread = statistics.stdev(changes) / math.sqrt(len(changes)) if len(changes) > 1 else float("nan")
            print(f"| {label} | **mean of {len(changes)}** | | | | | **{statistics.mean(changes):+.1f} %** "
                  f"(standard error {spread:.1f}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="train and code the jobs not yet in OUT")
    run_parser.add_argument("out", type=Path)
    run_parser.add_argument("label")
    run_parser.add_argument("--preset", default="medium")
    run_parser.add_argument("--arch", default="small")
    run_parser.add_argument("--set", action="append", default=[], metavar="FIELD=JSON")
    run_parser.add_argument("--photos", type=lambda text: text.split(","), default=list(PHOTOS))
    run_parser.add_argument("--lambdas", type=lambda text: [float(v) for v in text.split(",")], default=[0.004, 0.001])
    run_parser.add_argument("--seeds", type=lambda text: [int(v) for v in text.split(",")], default=[0])
    run_parser.add_argument("--workers", type=int, default=2)
    summary_parser = commands.add_parser("summary", help="every label against the base label, frame by frame")
    summary_parser.add_argument("out", type=Path)
    summary_parser.add_argument("base")
    args = parser.parse_args()
    if args.command == "run":
        run(args)
    else:
        summary(args)


if __name__ == "__main__":
    main()
