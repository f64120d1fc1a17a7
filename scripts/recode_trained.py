#!/usr/bin/env python3
"""Measure a post-training lever exactly: train the sample-class frames once, then code the same trained
models with each checkout (or override) to compare, so that seed noise does not enter the comparison.

    .venv/bin/python scripts/recode_trained.py train out/recode --preset medium
    PYTHONPATH=/path/to/other/checkout .venv/bin/python scripts/recode_trained.py code out/recode LABEL \
        [--set KEY=VALUE ...]
    .venv/bin/python scripts/recode_trained.py compare out/recode BASE TEST ...

`train` keeps each frame's trained float model (before quantisation) as MODELDIR/PHOTO_LAMBDA.pt;
`code` quantises, RDOQs, writes and decodes each with `code_model` of the vcodec on the path and appends
one JSON line per frame to MODELDIR/LABEL.jsonl (real bitstream sizes, PSNRs of the decoded frames);
`compare` prints BD-rates (PSNR-YUV 6:1:1 and Y, pchip) per photo. Everything resumes.

`code --qat-iterations N` first fine-tunes each model quantisation-aware (a lever measured and not kept,
docs/results/sample-class-2026-11-25-format5.md): network weights rounded in the forward pass (straight-
through gradient) at the steps the step search picks, `--qat-coarsen` steps coarser for the upsampling and
synthesis, latents rounded, Adam at `--qat-lr`; then codes it as usual.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from vcodec.bitstream.frame_header import FORMAT_VERSION  # noqa: E402
from vcodec.config import EncoderConfig, load_config  # noqa: E402
from vcodec.shapes import parameter_shapes  # noqa: E402
from vcodec.encoder.encode import code_model, fit  # noqa: E402
from vcodec.encoder.quantize import quantize_parameters  # noqa: E402
from vcodec.encoder.target import Target, make_target  # noqa: E402
from vcodec.encoder.train import QuantizerSetting, rd_loss  # noqa: E402
from vcodec.entropy.param_coder import parameter_groups  # noqa: E402
from vcodec.model.frame_model import FrameModel  # noqa: E402
from vcodec.eval.bdrate import bd_rate  # noqa: E402
from vcodec.samples import sample_frames  # noqa: E402

PHOTOS = ("astronaut", "coffee", "chelsea")
LAMBDAS = (0.004, 0.001, 0.0004, 0.0001)
WIDTH, HEIGHT = 416, 240


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def train(args: argparse.Namespace) -> None:
    args.modeldir.mkdir(parents=True, exist_ok=True)
    cfg = load_config("auto", args.preset)
    for photo in args.photos.split(","):
        frame = sample_frames(WIDTH, HEIGHT, 1, 8, photo)[0]
        for lmbda in LAMBDAS:
            path = args.modeldir / f"{photo}_{lmbda:g}.pt"
            if path.exists():
                continue
            start = time.perf_counter()
            model, _, costs = fit(frame, lmbda, cfg, None)
            torch.save({"model": model, "costs": costs, "preset": args.preset}, path.with_suffix(".tmp"))
            path.with_suffix(".tmp").replace(path)
            print(f"{photo} {lmbda:g}: {model.arch.name} in {time.perf_counter() - start:.0f} s", flush=True)


def quantisation_aware_fine_tune(model: FrameModel, target: Target, lmbda: float, cfg: EncoderConfig,
                                 iterations: int, coarsen: int, lr: float) -> None:
    """Train the model in place with its network weights rounded in the forward pass (straight-through)."""
    steps = quantize_parameters(copy.deepcopy(model), target, lmbda, cfg.preset.quantization_patience).step_exps
    rounded = [(tensor, step if group.module == "arm" else max(0, step - coarsen))
               for group, step in zip(parameter_groups(parameter_shapes(model.arch), FORMAT_VERSION), steps) for tensor in group.tensors(model)]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(iterations):
        floats = [tensor.data.clone() for tensor, _ in rounded]
        for tensor, step in rounded:
            tensor.data = torch.round(tensor.data * 2.0 ** step) / 2.0 ** step
        loss, _, _ = rd_loss(model, target, lmbda, cfg.loss, QuantizerSetting(quantizer="ste"))
        optimizer.zero_grad()
        loss.backward()
        for (tensor, _), value in zip(rounded, floats):
            tensor.data = value
        optimizer.step()


def code(args: argparse.Namespace) -> None:
    overrides = {key: _value(value) for key, value in (item.split("=", 1) for item in args.set)}
    out = args.modeldir / f"{args.label}.jsonl"
    done = {(r["photo"], r["lmbda"]) for r in map(json.loads, out.open())} if out.exists() else set()
    for path in sorted(args.modeldir.glob("*.pt")):
        photo, lmbda_text = path.stem.split("_")
        lmbda = float(lmbda_text)
        if (photo, lmbda) in done:
            continue
        saved = torch.load(path, weights_only=False)
        model = copy.deepcopy(saved["model"])
        frame = sample_frames(WIDTH, HEIGHT, 1, 8, photo)[0]
        cfg = load_config(model.arch.name, saved["preset"], **overrides)
        start = time.perf_counter()
        target = make_target(frame, "cpu")
        if args.qat_iterations:
            quantisation_aware_fine_tune(model, target, lmbda, cfg, args.qat_iterations, args.qat_coarsen, args.qat_lr)
        encoded = code_model(frame, model, target, lmbda, cfg, saved["costs"], start)
        row = {"label": args.label, "photo": photo, "lmbda": lmbda, "arch": model.arch.name, "bits": encoded.bits,
               "bpp": encoded.bpp(), "parameter_bits": encoded.parameter_bits, "latent_bits": encoded.latent_bits,
               "psnr_y": encoded.psnr.y, "psnr_u": encoded.psnr.u, "psnr_v": encoded.psnr.v,
               "psnr_yuv": encoded.psnr.yuv, "step_exps": list(encoded.step_exps),
               "code_seconds": time.perf_counter() - start}
        with out.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(f"{photo} {lmbda:g}: {encoded.bits} bits, {encoded.psnr.yuv:.3f} dB", flush=True)


def compare(args: argparse.Namespace) -> None:
    def load(label: str) -> list[dict]:
        return [json.loads(line) for line in (args.modeldir / f"{label}.jsonl").open()]

    def curves(rows: list[dict], metric: str) -> dict[str, tuple[list[float], list[float]]]:
        result: dict[str, tuple[list[float], list[float]]] = {}
        for row in sorted(rows, key=lambda r: r["bpp"]):
            rates, psnrs = result.setdefault(row["photo"], ([], []))
            rates.append(row["bpp"])
            psnrs.append(row[f"psnr_{metric}"])
        return result

    base = load(args.base)
    for label in args.tests:
        rows = load(label)
        for metric in ("yuv", "y"):
            base_curves, test_curves = curves(base, metric), curves(rows, metric)
            values = {photo: bd_rate(*base_curves[photo], *test_curves[photo]).value
                      for photo in PHOTOS if photo in base_curves and photo in test_curves}
            found = [v for v in values.values() if v is not None]
            cells = " ".join(f"{p} {v:+.2f}" for p, v in values.items() if v is not None)
            mean = f"{statistics.mean(found):+.2f} %" if found else "n/a"
            print(f"{label} vs {args.base}, BD-rate {metric.upper()}: {cells}; mean {mean}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    train_parser = sub.add_parser("train")
    train_parser.add_argument("modeldir", type=Path)
    train_parser.add_argument("--preset", default="medium")
    train_parser.add_argument("--photos", default=",".join(PHOTOS))
    code_parser = sub.add_parser("code")
    code_parser.add_argument("modeldir", type=Path)
    code_parser.add_argument("label")
    code_parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    code_parser.add_argument("--qat-iterations", type=int, default=0)
    code_parser.add_argument("--qat-coarsen", type=int, default=0)
    code_parser.add_argument("--qat-lr", type=float, default=1e-4)
    compare_parser = sub.add_parser("compare")
    compare_parser.add_argument("modeldir", type=Path)
    compare_parser.add_argument("base")
    compare_parser.add_argument("tests", nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(1)
    {"train": train, "code": code, "compare": compare}[args.command](args)


if __name__ == "__main__":
    main()
