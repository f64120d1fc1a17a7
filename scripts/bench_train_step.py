#!/usr/bin/env python3
"""Seconds per real training step of one architecture at 416x240 on one thread, as one JSON line.

The step is the presets' own: SOAP on the network, Adam on the latents, logmse, gradient clipping and soft
rounding, on the astronaut photo (what `scripts/bench_codec.py`'s throughput figure simplifies to Adam and
MSE). Run it from two checkouts in turn to compare code versions on one machine:

    .venv/bin/python scripts/bench_train_step.py main 5      # median of 5 blocks of 10 steps
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch

from vcodec.allocator import retain_freed_memory
from vcodec.config import load_arch
from vcodec.encoder.target import make_target
from vcodec.encoder.train import QuantizerSetting, _Optimizers, rd_loss
from vcodec.model.frame_model import FrameModel
from vcodec.samples import sample_frames


def main() -> None:
    arch, blocks = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5
    retain_freed_memory()
    torch.set_num_threads(1)
    setting = QuantizerSetting("softround", 0.3, "uniform", 1.0)
    frame = sample_frames(416, 240, 1, 8, "astronaut")[0]
    torch.manual_seed(0)
    model = FrameModel(load_arch(arch), 240, 416)
    target = make_target(frame, "cpu")
    optimizer = _Optimizers(model, "soap", 0.01, 0.1)
    parameters = [p for group in optimizer.param_groups for p in group["params"]]

    def step() -> None:
        loss, _, _ = rd_loss(model, target, 0.001, "logmse", setting)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 0.1)
        optimizer.step()

    for _ in range(10):
        step()
    seconds = []
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(10):
            step()
        seconds.append((time.perf_counter() - start) / 10)
    print(json.dumps({"arch": arch, "median": statistics.median(seconds), "blocks": seconds}))


if __name__ == "__main__":
    main()
