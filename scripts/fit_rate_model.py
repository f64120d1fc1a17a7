"""Fit the rate models of cfg/rate_control.toml from real encodes.

For each photo crop and lambda: a probe (the first `probe_fraction` of the main phase) is measured (real
bitstream bpp, PSNR-YUV of its quantised model), the same training goes on to the end and is coded as a
plain encode (this is bit-identical to `vcodec encode` at that lambda), then the tail of the main phase
is trained again at twice the lambda (what a correction does). Each point is appended to a JSON-lines
file as it is measured; `--fit` reads it and prints the [model.PRESET.*] tables.

    PYTHONPATH=. python scripts/fit_rate_model.py --preset fast --size 208x120 \
        --photos rocket,immunohistochemistry,hubble_deep_field --lambdas 0.004,0.001,0.0002 -o points.jsonl
    PYTHONPATH=. python scripts/fit_rate_model.py --fit points.jsonl --preset fast
"""

from __future__ import annotations

import argparse
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
            training.train_main(max(1, round(rc.probe_fraction * main)), lmbda)
            probe_bpp, probe_psnr = measure_model(frame, training, lmbda, cfg)
            training.train_main(main - max(1, round(rc.tail_fraction * main)), lmbda)
            tail = training.snapshot()
            trained = training.finish(lmbda)
            final = code_model(frame, trained.model.cpu(), make_target(frame, "cpu"), lmbda, cfg, (), began)
            seconds = time.perf_counter() - began
            training.restore(tail)
            retrained = training.finish(2 * lmbda)
            tail_coded = code_model(frame, retrained.model.cpu(), make_target(frame, "cpu"), 2 * lmbda, cfg, (),
                                    began)
            point = {
                "photo": photo, "size": args.size, "preset": args.preset, "lmbda": lmbda,
                "gradient_energy": gradient_energy(frame),
                "probe_bpp": probe_bpp, "probe_psnr": probe_psnr,
                "bpp": final.bpp(), "psnr": final.psnr.yuv, "encode_seconds": seconds,
                "tail_bpp": tail_coded.bpp(), "tail_psnr": tail_coded.psnr.yuv,
            }
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
        offset = float(np.mean([convert(p[key]) - convert(p[f"probe_{key}"]) for p in points]))
        tail = float(np.mean([(convert(p[f"tail_{key}"]) - convert(p[key])) / math.log(2) for p in points]))
        print(f"[model.{preset}.{metric}]  # {len(points)} points, rms residual {float(np.sqrt(np.mean(residual ** 2))):.3f}")
        print(f"intercept = {coefficients[0]:.4f}\nslope = {coefficients[1]:.4f}\nfeature = {coefficients[2]:.4f}")
        print(f"probe_offset = {offset:.4f}\ntail_slope = {tail:.4f}\n")


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
