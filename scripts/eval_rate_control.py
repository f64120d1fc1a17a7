"""Rate control's accuracy and cost on the sample class: for each clip and target, `vcodec encode` with
the target (its CSV gives the lambda it chose and the training runs it spent), then, in the same process
right after, a plain `vcodec encode` at that lambda; one markdown table row per pair.

    PYTHONPATH=. python scripts/eval_rate_control.py --preset fast --targets bpp=0.4,psnr=36 -o out/rc-eval

Clips are `vcodec.eval.sequences.write_sample_class` (astronaut, coffee, chelsea, 416x240, first frame),
as scripts/eval_sample_class.sh makes them. Pairs run `--workers` at a time, one torch thread each.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TOLERANCE = {"bpp": 0.03, "psnr": 0.15}


def run_pair(clip: Path, kind: str, value: float, preset: str, out: Path) -> dict:
    stem = f"{clip.stem.split('_')[0]}_{kind}{value:g}"
    base = [sys.executable, "-m", "vcodec", "encode", str(clip), "--preset", preset, "--threads", "1", "-y", "-q"]
    began = time.perf_counter()
    subprocess.run([*base, "-o", str(out / f"{stem}_rc.vcc"), f"--target-{kind}", str(value),
                    "--csv", str(out / f"{stem}_rc.csv")], check=True)
    rc_wall = time.perf_counter() - began
    with (out / f"{stem}_rc.csv").open(newline="") as handle:
        row = next(csv.DictReader(handle))
    began = time.perf_counter()
    subprocess.run([*base, "-o", str(out / f"{stem}_plain.vcc"), "--lmbda", row["lmbda"],
                    "--csv", str(out / f"{stem}_plain.csv")], check=True)
    plain_wall = time.perf_counter() - began
    with (out / f"{stem}_plain.csv").open(newline="") as handle:
        plain = next(csv.DictReader(handle))
    reached = float(row["bpp"]) if kind == "bpp" else float(row["psnr_yuv"])
    error = reached / value - 1 if kind == "bpp" else reached - value
    result = {
        "clip": clip.stem, "target": f"{kind}={value:g}", "lmbda": float(row["lmbda"]), "probes": int(row["probes"]),
        "bpp": float(row["bpp"]), "psnr_yuv": float(row["psnr_yuv"]), "error": error,
        "within": abs(error) <= TOLERANCE[kind] + 1e-12,
        "rc_seconds": float(row["encode_seconds"]), "plain_seconds": float(plain["encode_seconds"]),
        "rc_wall": rc_wall, "plain_wall": plain_wall,
        "plain_bpp": float(plain["bpp"]), "plain_psnr_yuv": float(plain["psnr_yuv"]),
    }
    with (out / "results.jsonl").open("a") as handle:
        handle.write(json.dumps(result) + "\n")
    return result


def table(results: list[dict]) -> str:
    lines = ["| clip | target | reached bpp | PSNR-YUV | error | within | lambda | training runs | encode s (rc) "
             "| encode s (plain, same lambda) | time ratio |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r["target"], r["clip"])):
        kind = r["target"].split("=")[0]
        error = f"{100 * r['error']:+.2f} %" if kind == "bpp" else f"{r['error']:+.3f} dB"
        lines.append(f"| {r['clip'].split('_')[0]} | {r['target']} | {r['bpp']:.4f} | {r['psnr_yuv']:.2f} | {error} "
                     f"| {'yes' if r['within'] else 'no'} | {r['lmbda']:.3g} | {r['probes']} | {r['rc_seconds']:.1f} "
                     f"| {r['plain_seconds']:.1f} | {r['rc_seconds'] / r['plain_seconds']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--targets", default="bpp=0.4,psnr=36")
    parser.add_argument("--photos", default="astronaut,coffee,chelsea")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("-o", "--output", type=Path, default=Path("out/rc-eval"))
    parser.add_argument("--table", action="store_true", help="only print the table of results.jsonl")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    if not args.table:
        from vcodec.eval.sequences import write_sample_class

        clips = write_sample_class(args.output / "clips", args.photos.split(","), 416, 240, frames=1)
        targets = [(kind, float(value)) for kind, value in (t.split("=") for t in args.targets.split(","))]
        pairs = [(clip, kind, value) for kind, value in targets for clip in clips]
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(lambda p: run_pair(*p, args.preset, args.output), pairs))
    results = [json.loads(line) for line in (args.output / "results.jsonl").read_text().splitlines()]
    print(table([r for r in results]))


if __name__ == "__main__":
    main()
