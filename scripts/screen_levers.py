#!/usr/bin/env python3
"""Screen a compression lever quickly: encode small photo crops at 4 lambdas with configuration
overrides, store every point (resumable), and print BD-rate (PSNR-YUV 6:1:1, pchip) against a baseline.

    .venv/bin/python scripts/screen_levers.py run base --preset fast
    .venv/bin/python scripts/screen_levers.py run gain --preset fast --set latent_gain=16
    .venv/bin/python scripts/screen_levers.py compare base gain

Rates are real bitstream sizes and PSNRs come from the decoded frames (encode_frame_report). The store
is one JSON line per point under --store (default out/screen), so an interrupted run resumes.
Screening figures are for choosing levers; the sample-class eval (scripts/eval_sample_class.sh) is the
result that counts.
"""

from __future__ import annotations

import argparse
import json
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
    done = {(row["photo"], row["lmbda"]) for row in _load(args.store, args.label)}
    args.store.mkdir(parents=True, exist_ok=True)
    lambdas = [float(v) for v in args.lambdas.split(",")]
    for photo in args.photos.split(","):
        frame = sample_frames(width, height, 1, 8, photo)[0]
        for lmbda in lambdas:
            if (photo, lmbda) in done:
                continue
            encoded = encode_frame_report(frame, lmbda, cfg)
            row = {
                "label": args.label, "photo": photo, "size": args.size, "lmbda": lmbda,
                "preset": args.preset, "arch": args.arch, "arch_written": encoded.arch_name,
                "overrides": overrides, "bits": encoded.bits, "bpp": encoded.bpp(),
                "parameter_bits": encoded.parameter_bits,
                "psnr_y": encoded.psnr.y, "psnr_u": encoded.psnr.u, "psnr_v": encoded.psnr.v,
                "psnr_yuv": encoded.psnr.yuv, "seconds": encoded.seconds,
            }
            with _store_path(args.store, args.label).open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(f"{args.label} {photo} {lmbda:g}: {row['bpp']:.4f} bpp {row['psnr_yuv']:.2f} dB "
                  f"(Y {row['psnr_y']:.2f} U {row['psnr_u']:.2f} V {row['psnr_v']:.2f}) "
                  f"params {100 * row['parameter_bits'] / row['bits']:.1f} % {row['seconds']:.1f} s",
                  file=sys.stderr, flush=True)


def _curves(rows: list[dict], metric: str) -> dict[str, tuple[list[float], list[float]]]:
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for row in sorted(rows, key=lambda r: r["bpp"]):
        rates, psnrs = curves.setdefault(row["photo"], ([], []))
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
                if photo not in base_curves or photo not in test_curves:
                    if metric == "yuv":
                        cells.append("-")
                    continue
                result = bd_rate(*base_curves[photo], *test_curves[photo])
                if result.value is not None:
                    values[metric].append(result.value)
                if metric == "yuv":
                    cells.append(result.text())
        base_time = sum(r["seconds"] for r in base_rows)
        test_time = sum(r["seconds"] for r in rows)
        ratio = test_time / base_time * len(base_rows) / max(1, len(rows)) if base_rows and rows else float("nan")
        share = statistics.mean(r["parameter_bits"] / r["bits"] for r in rows) if rows else float("nan")
        mean_yuv = f"{statistics.mean(values['yuv']):+.2f}" if values["yuv"] else "n/a"
        mean_y = f"{statistics.mean(values['y']):+.2f}" if values["y"] else "n/a"
        print(f"| {label} | " + " | ".join(cells) + f" | {mean_yuv} | {mean_y} | {ratio:.2f} | {100 * share:.1f} % |")


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
    run_parser.add_argument("--threads", type=int, default=1)
    run_parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="configuration override (any preset or arch field), repeatable")
    compare_parser = sub.add_parser("compare", help="BD-rate of labels against a base label")
    compare_parser.add_argument("base")
    compare_parser.add_argument("tests", nargs="+")
    args = parser.parse_args()
    run(args) if args.command == "run" else compare(args)


if __name__ == "__main__":
    main()
