#!/usr/bin/env python3
"""Screen a compression lever quickly: encode small photo crops at 4 lambdas with configuration
overrides, store every point (resumable), and print BD-rate (PSNR-YUV 6:1:1, pchip) against a baseline.

    .venv/bin/python scripts/screen_levers.py run base --preset fast
    .venv/bin/python scripts/screen_levers.py run gain --preset fast --set latent_gain=16
    .venv/bin/python scripts/screen_levers.py compare base gain
    .venv/bin/python scripts/screen_levers.py run lean --preset medium --arch small --size 416x240 \
        --lambdas 0.004,0.001 --seeds 0,1 --set arm_context=8 --set 'arm_hidden=[8,8]'
    .venv/bin/python scripts/screen_levers.py frames base lean

`compare` gives BD-rates over the lambdas (per photo and seed, then their mean); `frames` compares frame by
frame, where a label has too few lambdas for a curve or the seed noise is to be seen: the rate at equal
PSNR-YUV, moving the PSNR difference along the base's own RD slope (a one-point BD-rate).

Rates are real bitstream sizes and PSNRs come from the decoded frames (encode_frame_report). The store
is one JSON line per point under --store (default out/screen), so an interrupted run resumes.
Screening figures are for choosing levers; the sample-class eval (scripts/eval_sample_class.sh) is the
result that counts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from vcodec.config import load_config  # noqa: E402
from vcodec.encoder import encode_frame_report  # noqa: E402
from vcodec.eval.bdrate import bd_rate  # noqa: E402
from vcodec.samples import sample_frames  # noqa: E402

LAMBDAS = (0.0001, 0.0004, 0.001, 0.004)
PHOTOS = ("astronaut", "coffee", "chelsea")


def _value(text: str) -> object:
    """TOML-like literal for --set: int, float, list, bool or bare string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _store_path(store: Path, label: str) -> Path:
    return store / f"{label}.jsonl"


def _load(store: Path, label: str) -> list[dict]:
    path = _store_path(store, label)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run(args: argparse.Namespace) -> None:
    overrides = dict(item.split("=", 1) for item in args.set)
    overrides = {key: _value(value) for key, value in overrides.items()}
    cfg = load_config(args.arch, args.preset, **overrides)
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.split("x"))
    done = {(row["photo"], row["lmbda"], row.get("seed", 0)) for row in _load(args.store, args.label)}
    args.store.mkdir(parents=True, exist_ok=True)
    lambdas = [float(v) for v in args.lambdas.split(",")]
    for photo in args.photos.split(","):
        frame = sample_frames(width, height, 1, 8, photo)[0]
        for seed in (int(v) for v in args.seeds.split(",")):
            for lmbda in lambdas:
                if (photo, lmbda, seed) in done:
                    continue
                encoded = encode_frame_report(frame, lmbda, dataclasses.replace(cfg, seed=seed))
                row = {
                    "label": args.label, "photo": photo, "size": args.size, "lmbda": lmbda, "seed": seed,
                    "preset": args.preset, "arch": args.arch, "arch_written": encoded.arch_name,
                    "overrides": overrides, "bits": encoded.bits, "bpp": encoded.bpp(),
                    "parameter_bits": encoded.parameter_bits,
                    "psnr_y": encoded.psnr.y, "psnr_u": encoded.psnr.u, "psnr_v": encoded.psnr.v,
                    "psnr_yuv": encoded.psnr.yuv, "seconds": encoded.seconds,
                }
                with _store_path(args.store, args.label).open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(f"{args.label} {photo} {lmbda:g} seed {seed}: {row['bpp']:.4f} bpp {row['psnr_yuv']:.2f} dB "
                      f"(Y {row['psnr_y']:.2f} U {row['psnr_u']:.2f} V {row['psnr_v']:.2f}) "
                      f"params {100 * row['parameter_bits'] / row['bits']:.1f} % {row['seconds']:.1f} s",
                      file=sys.stderr, flush=True)


def _curves(rows: list[dict], metric: str) -> dict[tuple[str, int], tuple[list[float], list[float]]]:
    """Per (photo, seed): rates and PSNRs in rate order."""
    curves: dict[tuple[str, int], tuple[list[float], list[float]]] = {}
    for row in sorted(rows, key=lambda r: r["bpp"]):
        rates, psnrs = curves.setdefault((row["photo"], row.get("seed", 0)), ([], []))
        rates.append(row["bpp"])
        psnrs.append(row[f"psnr_{metric}"])
    return curves


def compare(args: argparse.Namespace) -> None:
    base_rows = _load(args.store, args.base)
    print(f"sizes: {args.base} {sorted({r['size'] for r in base_rows})}", file=sys.stderr)
    print(f"| test vs {args.base} | " + " | ".join(PHOTOS) + " | mean YUV | mean Y | time ratio | param share |")
    print("|---" * (len(PHOTOS) + 5) + "|")
    for label in args.tests:
        rows = _load(args.store, label)
        values: dict[str, list[float]] = {"yuv": [], "y": []}
        cells = []
        for metric in ("yuv", "y"):
            base_curves, test_curves = _curves(base_rows, metric), _curves(rows, metric)
            for photo in PHOTOS:
                keys = sorted(key for key in test_curves if key[0] == photo and key in base_curves)
                results = [bd_rate(*base_curves[key], *test_curves[key]) for key in keys]
                found = [result.value for result in results if result.value is not None]
                values[metric].extend(found)
                if metric == "yuv":
                    cells.append(" / ".join(result.text() for result in results) or "-")
        base_time = sum(r["seconds"] for r in base_rows)
        test_time = sum(r["seconds"] for r in rows)
        ratio = test_time / base_time * len(base_rows) / max(1, len(rows)) if base_rows and rows else float("nan")
        share = statistics.mean(r["parameter_bits"] / r["bits"] for r in rows) if rows else float("nan")
        mean_yuv = f"{statistics.mean(values['yuv']):+.2f}" if values["yuv"] else "n/a"
        mean_y = f"{statistics.mean(values['y']):+.2f}" if values["y"] else "n/a"
        print(f"| {label} | " + " | ".join(cells) + f" | {mean_yuv} | {mean_y} | {ratio:.2f} | {100 * share:.1f} % |")


def rd_slopes(rows: list[dict]) -> dict[tuple[str, int], float]:
    """Per (photo, seed): log-rate per dB of PSNR-YUV between the rows' lowest and highest PSNR (a local RD
    slope, to turn a PSNR difference into the rate it is worth)."""
    points: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for row in rows:
        points.setdefault((row["photo"], row.get("seed", 0)), []).append((row["psnr_yuv"], math.log(row["bits"])))
    return {key: (max(pts)[1] - min(pts)[1]) / (max(pts)[0] - min(pts)[0])
            for key, pts in points.items() if len(pts) > 1 and max(pts)[0] > min(pts)[0]}


def rate_at_equal_quality(row: dict, base: dict, slope: float) -> float:
    """Per cent more bits than the base at the base's PSNR-YUV, along the local RD slope (negative: better)."""
    return 100 * (math.exp(math.log(row["bits"] / base["bits"]) - slope * (row["psnr_yuv"] - base["psnr_yuv"])) - 1)


def frames(args: argparse.Namespace) -> None:
    base_rows = _load(args.store, args.base)
    base = {(r["photo"], r["lmbda"], r.get("seed", 0)): r for r in base_rows}
    slopes = rd_slopes(base_rows)
    mean_slope = statistics.mean(slopes.values()) if slopes else 0.0
    print("| label | photo | lambda | seed | bits vs base | PSNR-YUV vs base | rate at equal PSNR-YUV |")
    print("|---|---|---|---|---|---|---|")
    for label in args.tests:
        changes = []
        for row in sorted(_load(args.store, label), key=lambda r: (-r["lmbda"], r["photo"], r.get("seed", 0))):
            key = (row["photo"], row["lmbda"], row.get("seed", 0))
            if key not in base:
                continue
            change = rate_at_equal_quality(row, base[key], slopes.get((key[0], key[2]), mean_slope))
            changes.append(change)
            print(f"| {label} | {key[0]} | {key[1]:g} | {key[2]} | {100 * (row['bits'] / base[key]['bits'] - 1):+.1f} % | "
                  f"{row['psnr_yuv'] - base[key]['psnr_yuv']:+.3f} dB | {change:+.1f} % |")
        if changes:
            error = statistics.stdev(changes) / math.sqrt(len(changes)) if len(changes) > 1 else float("nan")
            print(f"| {label} | **mean of {len(changes)}** | | | | | **{statistics.mean(changes):+.1f} %** "
                  f"(standard error {error:.1f}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=Path("out/screen"))
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="encode the photos at every lambda under a label")
    run_parser.add_argument("label")
    run_parser.add_argument("--preset", default="fast")
    run_parser.add_argument("--arch", default="main")
    run_parser.add_argument("--size", default="208x120")
    run_parser.add_argument("--photos", default=",".join(PHOTOS))
    run_parser.add_argument("--lambdas", default=",".join(str(v) for v in LAMBDAS))
    run_parser.add_argument("--seeds", default="0", help="training seeds, comma-separated")
    run_parser.add_argument("--threads", type=int, default=1)
    run_parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="configuration override (any preset or arch field), repeatable")
    compare_parser = sub.add_parser("compare", help="BD-rate of labels against a base label")
    compare_parser.add_argument("base")
    compare_parser.add_argument("tests", nargs="+")
    frames_parser = sub.add_parser("frames", help="labels against a base label, frame by frame")
    frames_parser.add_argument("base")
    frames_parser.add_argument("tests", nargs="+")
    args = parser.parse_args()
    {"run": run, "compare": compare, "frames": frames}[args.command](args)


if __name__ == "__main__":
    main()
