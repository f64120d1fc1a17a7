"""Fit the rate models of cfg/rate_control.toml from real encodes.

For each photo crop and lambda, one training at that lambda is measured at the search's three
checkpoints (the probe, the middle, the start of the tail: real bitstream bpp and PSNR-YUV of its
quantised model), goes on to the end and is coded as a plain encode (bit-identical to `vcodec encode` at
that lambda); then the training is taken back to the middle and to the tail and finished at twice the
lambda (what steering there, or a correction, can still move). Each point is appended to a JSON-lines
file as it is measured; `--fit` reads it and prints the [model.PRESET.*] tables.

    PYTHONPATH=. python scripts/fit_rate_model.py --preset fast --size 208x120 \
        --photos rocket,immunohistochemistry,hubble_deep_field --lambdas 0.004,0.001,0.0002 -o points.jsonl
    PYTHONPATH=. python scripts/fit_rate_model.py --fit points.jsonl --preset fast
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import numpy as np


def measure(args: argparse.Namespace) -> None:
    import torch

    from vcodec.config import load_config, load_rate_control
    from vcodec.encoder.encode import code_model, start_training
    from vcodec.encoder.rate_control import gradient_energy, measure_model
    from vcodec.encoder.target import make_target
    from vcodec.samples import sample_frames

    torch.set_num_threads(1)
    rc = load_rate_control()
    cfg = load_config("auto", args.preset)
    width, height = (int(v) for v in args.size.split("x"))
    out = Path(args.output)
    done = set()
    if out.exists():
        done = {(p["photo"], p["lmbda"]) for p in map(json.loads, out.read_text().splitlines())}
    for photo in args.photos.split(","):
        frame = sample_frames(width, height, 1, 8, photo)[0]
        for lmbda in (float(v) for v in args.lambdas.split(",")):
            if (photo, lmbda) in done:
                continue
            began = time.perf_counter()
            training = start_training(frame, lmbda, cfg, None)
            main = training.main.iterations
            point = {"photo": photo, "size": args.size, "preset": args.preset, "lmbda": lmbda,
                     "gradient_energy": gradient_energy(frame)}
            snapshots = {}
            for where, until in (("probe", max(1, round(rc.probe_fraction * main))),
                                 ("mid", round(rc.mid_fraction * main)),
                                 ("tail", main - max(1, round(rc.tail_fraction * main)))):
                training.train_main(until, lmbda)
                point[f"{where}_bpp"], point[f"{where}_psnr"] = measure_model(frame, training, lmbda, cfg)
                snapshots[where] = training.snapshot()
            final = code_model(frame, copy.deepcopy(training.finish(lmbda).model).cpu(), make_target(frame, "cpu"),
                               lmbda, cfg, (), began)
            point.update(bpp=final.bpp(), psnr=final.psnr.yuv, encode_seconds=time.perf_counter() - began)
            for where in ("mid", "tail"):  # what a change of lambda from there on still moves
                training.restore(snapshots[where])
                late = code_model(frame, copy.deepcopy(training.finish(2 * lmbda).model).cpu(),
                                  make_target(frame, "cpu"), 2 * lmbda, cfg, (), began)
                point[f"{where}2x_bpp"], point[f"{where}2x_psnr"] = late.bpp(), late.psnr.yuv
            with out.open("a") as handle:
                handle.write(json.dumps(point) + "\n")
            print(json.dumps(point), flush=True)


def fit(path: Path, preset: str) -> None:
    points = [p for p in map(json.loads, path.read_text().splitlines()) if p["preset"] == preset]
    design = np.array([[1.0, math.log(p["lmbda"]), math.log(p["gradient_energy"])] for p in points])
    for metric, key, convert in (("bpp", "bpp", math.log), ("psnr", "psnr", float)):
        y = np.array([convert(p[key]) for p in points])
        coefficients, *_ = np.linalg.lstsq(design, y, rcond=None)
        residual = y - design @ coefficients
        offsets = {where: float(np.mean([convert(p[key]) - convert(p[f"{where}_{key}"]) for p in points]))
                   for where in ("probe", "mid", "tail")}
        slopes = {where: float(np.mean([(convert(p[f"{where}2x_{key}"]) - convert(p[key])) / math.log(2)
                                        for p in points])) for where in ("mid", "tail")}
        print(f"[model.{preset}.{metric}]  # {len(points)} points, rms residual {float(np.sqrt(np.mean(residual ** 2))):.3f}")
        print(f"intercept = {coefficients[0]:.4f}\nslope = {coefficients[1]:.4f}\nfeature = {coefficients[2]:.4f}")
        for where, offset in offsets.items():
            spread = np.std([convert(p[key]) - convert(p[f"{where}_{key}"]) for p in points])
            line = f"{where}_offset = {offset:.4f}  # spread {spread:.3f}"
            print(line if where != "tail" else f"# {line} (the search does not steer at the tail)")
        for where, slope in slopes.items():
            print(f"{where}_slope = {slope:.4f}")
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--size", default="208x120")
    parser.add_argument("--photos", default="rocket,immunohistochemistry,hubble_deep_field")
    parser.add_argument("--lambdas", default="0.004,0.001,0.0002")
    parser.add_argument("-o", "--output", default="rate_points.jsonl")
    parser.add_argument("--fit", type=Path, help="print the fitted models of this JSON-lines file")
    args = parser.parse_args()
    if args.fit:
        fit(args.fit, args.preset)
    else:
        measure(args)


if __name__ == "__main__":
    main()
