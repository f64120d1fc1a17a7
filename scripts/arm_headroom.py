#!/usr/bin/env python3
"""How much an entropy-model change could gain, probed on fixed latents before building it.

The latents of trained frames are held fixed (rounded, as coded) and only the ARM is fine-tuned on them,
once as it is (`refit`, the baseline) and once per variant, each starting from the trained ARM (a
variant's extra inputs start with zero weights, so every variant starts at the trained ARM's rate).
What is compared is the information content of the fixed latents under each float ARM: an estimate of
the latent rate (the real coder adds 0.05-0.25 %), not a bitstream size. It measures the entropy model's
headroom only; latents trained jointly with a variant could move further.

Variants:
  refit      the ARM as it is, fine-tuned (the baseline of the others)
  cross1     + the co-located latent of the next coarser grid as one more input
  cross5     + that latent and its 4 neighbours (a decoder would decode coarse grids first)
  logistic   a discretised logistic instead of the Laplace (same two outputs)
  gaussian   a discretised Gaussian instead of the Laplace

    .venv/bin/python scripts/recode_trained.py train out/recode --preset medium   # the trained models
    .venv/bin/python scripts/arm_headroom.py run out/recode out/recode/headroom.jsonl
    .venv/bin/python scripts/arm_headroom.py summary out/recode/headroom.jsonl
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from vcodec.model.arm import Arm, laplace_bits
from vcodec.format import LOG2_SCALE_MAX, LOG2_SCALE_MIN

VARIANTS = ("refit", "cross1", "cross5", "logistic", "gaussian")
CROSS_OFFSETS = {"cross1": [(0, 0)], "cross5": [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]}
ASSUMED_BITS_PER_ARM_PARAMETER = 3.5  # measured 2.7-4.6 (docs/results/ablation-2026-11-24.md)


def coarser_features(grids: list[torch.Tensor], offsets: list[tuple[int, int]]) -> torch.Tensor:
    """(len(offsets), positions): for each position of each grid, the next coarser grid's latents at
    (i // 2 + dy, j // 2 + dx), zero outside it and for the coarsest grid."""
    features = []
    for level, grid in enumerate(grids):
        height, width = grid.shape[-2:]
        if level + 1 == len(grids) or not offsets:
            features.append(grid.new_zeros(len(offsets), height * width))
            continue
        padded = F.pad(grids[level + 1][0, 0], (1, 1, 1, 1))
        rows = torch.arange(height) // 2 + 1
        cols = torch.arange(width) // 2 + 1
        features.append(torch.stack([padded[(rows + dy)[:, None], (cols + dx)[None, :]].reshape(-1)
                                     for dy, dx in offsets]))
    return torch.cat(features, dim=1)


def family_bits(values: torch.Tensor, mean: torch.Tensor, log2_scale: torch.Tensor, family: str) -> torch.Tensor:
    """Total -log2 P(value) of the integers under the discretised family (Laplace as the codec codes it)."""
    if family == "laplace":
        return laplace_bits(values, mean, log2_scale).sum()
    scale = torch.exp2(log2_scale.clamp(LOG2_SCALE_MIN, LOG2_SCALE_MAX))
    upper, lower = (values + 0.5 - mean) / scale, (values - 0.5 - mean) / scale
    if family == "logistic":
        probability = torch.sigmoid(upper) - torch.sigmoid(lower)
    else:
        probability = 0.5 * (torch.erf(upper / math.sqrt(2)) - torch.erf(lower / math.sqrt(2)))
    return -torch.log2(probability.clamp(min=1e-12)).sum()


def widened(arm: Arm, extra_inputs: int) -> Arm:
    """A copy of the trained ARM whose first layer takes `extra_inputs` more inputs, weighted zero."""
    copied = copy.deepcopy(arm)
    if extra_inputs:
        first = copied.layers[0]
        layer = torch.nn.Linear(first.in_features + extra_inputs, first.out_features)
        with torch.no_grad():
            layer.weight.zero_()
            layer.weight[:, : first.in_features] = first.weight
            layer.bias.copy_(first.bias)
        copied.layers[0] = layer
    return copied


def fine_tune(arm: Arm, grids: list[torch.Tensor], variant: str, iterations: int, lr: float) -> tuple[float, int]:
    """Adam with a cosine learning rate on the fixed latents' bits; returns (bits, ARM parameters)."""
    offsets = CROSS_OFFSETS.get(variant, [])
    model = widened(arm, len(offsets))
    contexts = torch.cat([arm.context(grid) for grid in grids], dim=1)
    if offsets:
        contexts = torch.cat([contexts, coarser_features(grids, offsets)], dim=0)
    contexts = contexts.detach()
    values = torch.cat([grid.flatten() for grid in grids])
    family = variant if variant in ("logistic", "gaussian") else "laplace"
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for iteration in range(iterations):
        for group in optimizer.param_groups:
            group["lr"] = 1e-6 + (lr - 1e-6) * 0.5 * (1 + math.cos(math.pi * iteration / iterations))
        bits = family_bits(values, *model.predict(contexts), family)
        optimizer.zero_grad()
        bits.backward()
        optimizer.step()
    with torch.no_grad():
        final = float(family_bits(values, *model.predict(contexts), family))
    return final, sum(p.numel() for p in model.parameters())


def run(args: argparse.Namespace) -> None:
    done = {json.loads(line)["model"] for line in args.out.open()} if args.out.exists() else set()
    for path in sorted(args.modeldir.glob("*.pt")):
        if path.stem in done:
            continue
        model = torch.load(path, weights_only=False)["model"]
        grids = [grid.detach() for grid in model.rounded_grids()]
        row: dict[str, object] = {"model": path.stem, "arch": model.arch.name}
        with torch.no_grad():
            row["trained"] = float(model.arm.bits(grids))
        for variant in args.variants.split(","):
            torch.manual_seed(0)
            row[variant], row[f"{variant}_parameters"] = fine_tune(model.arm, grids, variant, args.iterations, args.lr)
        with args.out.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


def summary(args: argparse.Namespace) -> None:
    rows = [json.loads(line) for line in args.out.open()]
    variants = [v for v in VARIANTS[1:] if all(v in row for row in rows)]
    print("| frame | arch | refit vs trained | " + " | ".join(f"{v} (net)" for v in variants) + " |")
    print("|---|---|---|" + "---|" * len(variants))
    changes: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    for row in rows:
        base = row["refit"]
        cells = []
        for variant in variants:
            change = 100 * (row[variant] - base) / base
            extra = ASSUMED_BITS_PER_ARM_PARAMETER * (row[f"{variant}_parameters"] - row["refit_parameters"])
            net = 100 * (row[variant] + extra - base) / base
            changes[variant].append((change, net))
            cells.append(f"{change:+.2f} ({net:+.2f})")
        refit = 100 * (base - row["trained"]) / row["trained"]
        print(f"| {row['model']} | {row['arch']} | {refit:+.2f} | " + " | ".join(cells) + " |")
    print("| **mean** | | | " + " | ".join(
        f"**{statistics.mean(c for c, _ in changes[v]):+.2f}** ({statistics.mean(n for _, n in changes[v]):+.2f})"
        for v in variants) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run")
    run_parser.add_argument("modeldir", type=Path)
    run_parser.add_argument("out", type=Path)
    run_parser.add_argument("--variants", default=",".join(VARIANTS))
    run_parser.add_argument("--iterations", type=int, default=300)
    run_parser.add_argument("--lr", type=float, default=3e-3)
    summary_parser = sub.add_parser("summary")
    summary_parser.add_argument("out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    {"run": run, "summary": summary}[args.command](args)


if __name__ == "__main__":
    main()
