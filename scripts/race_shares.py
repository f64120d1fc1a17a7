#!/usr/bin/env python3
"""The arch race's view of each sample-class frame: which candidate wins a preset's warm-up and what share
of its coded bits its parameters take at that point (docs/results/downsize-2026-11-25.md: a threshold on
that share was to decide where a smaller decoder is tried).

    .venv/bin/python scripts/race_shares.py slow out/race-shares-slow.jsonl
    .venv/bin/python scripts/race_shares.py medium out/race-shares-medium.jsonl --photos coffee --lambdas 0.001

Only the warm-up runs (no main phase); the winner is then coded as the race codes it (real bitstream, the
parameter steps searched, no RDOQ). One JSON line per frame; rerunning skips the frames already written.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from vcodec.config import load_config  # noqa: E402
from vcodec.encoder.encode import start_training, write_bitstream  # noqa: E402
from vcodec.encoder.quantize import quantize_parameters  # noqa: E402
from vcodec.encoder.target import make_target  # noqa: E402
from vcodec.samples import sample_frames  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset")
    parser.add_argument("output", type=Path)
    parser.add_argument("--photos", default="astronaut,coffee,chelsea")
    parser.add_argument("--lambdas", default="0.0001,0.0004,0.001,0.004")
    parser.add_argument("--size", default="416x240")
    args = parser.parse_args()
    torch.set_num_threads(1)
    width, height = (int(v) for v in args.size.split("x"))
    cfg = load_config("auto", args.preset)
    done = set()
    if args.output.exists():
        done = {(row["photo"], row["lmbda"]) for row in map(json.loads, args.output.read_text().splitlines())}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for photo in args.photos.split(","):
        frame = sample_frames(width, height, 1, 8, photo)[0]
        for lmbda in (float(v) for v in args.lambdas.split(",")):
            if (photo, lmbda) in done:
                continue
            training = start_training(frame, lmbda, cfg, None)
            winner = copy.deepcopy(training.model).cpu()
            params = quantize_parameters(winner, make_target(frame, "cpu"), lmbda, cfg.preset.quantization_patience)
            data, sizes = write_bitstream(frame, winner, params)
            share = sizes["parameter_bits"] / (8 * len(data))
            row = {"preset": args.preset, "photo": photo, "size": args.size, "lmbda": lmbda,
                   "winner": winner.arch.name, "candidate_costs": training.candidate_scores, "bits": 8 * len(data),
                   "parameter_bits": sizes["parameter_bits"], "parameter_share": share,
                   "warmup_iterations": training.warmup_iterations}
            with args.output.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(f"{photo} {lmbda:g}: {row['winner']} wins, parameters {100 * share:.1f} % of its bits",
                  file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
