#!/usr/bin/env python3
"""Where the memory of one training step goes: the tensors autograd keeps for the backward pass, by part
of the model, plus the parameters, gradients, optimiser state and target, and the process's peak RSS.

    .venv/bin/python scripts/memory_breakdown.py --size 1920x1080
    .venv/bin/python scripts/memory_breakdown.py --size 1920x1080 --memory-saving-pixels 0   # force it on
    .venv/bin/python scripts/memory_breakdown.py --size 416x240 --compare-speed 20     # seconds per step

With --compare-speed N: no breakdown; instead the seconds per training step on the plain path and on the
memory-saving path, in one process, in alternating blocks of N steps (5 blocks each, the median), so
that both see the same load.

One step of the default preset's first phase (softround quantizer, logmse loss, SOAP on the networks and
Adam on the latents, as vcodec's encoder runs it), one torch thread, the allocator set up as training
does. Saved tensors are counted once per storage (views of one buffer count once), in the part of the
forward pass that saved them. Prints a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from collections import defaultdict

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from vcodec.config import load_config  # noqa: E402
from vcodec.allocator import retain_freed_memory  # noqa: E402
from vcodec.encoder.target import make_target  # noqa: E402
from vcodec.encoder.train import QuantizerSetting, _Optimizers, _latent_lr, rd_loss  # noqa: E402
from vcodec.model.frame_model import FrameModel  # noqa: E402
from vcodec.samples import sample_frames  # noqa: E402

MIB = 2**20


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _trainer(arch: str, preset_name: str, width: int, height: int, memory_saving_pixels: int | None):
    """A function running one training step of the preset's first phase, on a fresh model."""
    cfg = load_config(arch, preset_name)
    preset = cfg.preset
    target = make_target(sample_frames(width, height, 1, 8, "astronaut")[0], "cpu")
    torch.manual_seed(0)
    model = FrameModel(cfg.arch, height, width, memory_saving_pixels=memory_saving_pixels)
    optimizer = _Optimizers(model, preset.optimizer, preset.learning_rate, _latent_lr(preset, preset.learning_rate))
    setting = QuantizerSetting(preset.noise_quantizer, preset.softround_temperature[0], preset.noise,
                               preset.noise_parameter[0])

    def step() -> None:
        loss, _, _ = rd_loss(model, target, 0.001, cfg.loss, setting)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def compare_speed(arch: str, preset: str, width: int, height: int, steps: int) -> None:
    paths = {"plain": _trainer(arch, preset, width, height, None),
             "memory-saving": _trainer(arch, preset, width, height, 0)}
    for step in paths.values():
        step()  # warm-up: allocator, SOAP's first preconditioners
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(5):
        for name, step in paths.items():
            start = time.perf_counter()
            for _ in range(steps):
                step()
            times[name].append((time.perf_counter() - start) / steps)
    print(f"{width}x{height}, seconds per step (median of 5 blocks of {steps}; all blocks):")
    for name, values in times.items():
        print(f"  {name}: {statistics.median(values):.4f}  ({', '.join(f'{v:.4f}' for v in values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--arch", default="main")
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--memory-saving-pixels", type=int, help="override the preset's memory_saving_pixels")
    parser.add_argument("--compare-speed", type=int, default=0, metavar="N")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    retain_freed_memory()
    torch.set_num_threads(1)
    if args.compare_speed:
        compare_speed(args.arch, args.preset, width, height, args.compare_speed)
        return
    overrides = {} if args.memory_saving_pixels is None else {"memory_saving_pixels": args.memory_saving_pixels}
    cfg = load_config(args.arch, args.preset, **overrides)
    preset = cfg.preset
    target = make_target(sample_frames(width, height, 1, 8, "astronaut")[0], "cpu")
    torch.manual_seed(0)
    model = FrameModel(cfg.arch, height, width, memory_saving_pixels=cfg.preset.memory_saving_pixels)
    optimizer = _Optimizers(model, preset.optimizer, preset.learning_rate, _latent_lr(preset, preset.learning_rate))
    setting = QuantizerSetting(preset.noise_quantizer, preset.softround_temperature[0], preset.noise,
                               preset.noise_parameter[0])

    setup_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    part = ["quantize latents"]
    order = ["quantize latents", "arm (contexts, MLP)", "rate (Laplace bits)", "upsampling", "synthesis",
             "loss (4:2:0, distortion)"]

    def label(name: str):
        return lambda *_: part.__setitem__(0, name)

    model.arm.register_forward_pre_hook(label(order[1]))
    model.arm.register_forward_hook(label(order[2]))
    model.upsampling.register_forward_pre_hook(label(order[3]))
    model.synthesis.register_forward_pre_hook(label(order[4]))
    model.synthesis.register_forward_hook(label(order[5]))
    saved: dict[str, dict[int, int]] = defaultdict(dict)
    parameter_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameter_storages:
            saved[part[0]][storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss, _, _ = rd_loss(model, target, 0.001, cfg.loss, setting)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    state = [t for opt in optimizer.parts for s in opt.state.values() for t in s.values() if torch.is_tensor(t)]
    latents = list(model.latents.parameters())
    network = [p for name, p in model.named_parameters() if not name.startswith("latents.")]
    print(f"One training step at {width}x{height} ({args.arch}, preset {args.preset}, "
          f"memory_saving_pixels {preset.memory_saving_pixels})\n")
    print("| part | MiB |\n|---|---|")
    for name in order:
        print(f"| saved for backward: {name} | {sum(saved[name].values()) / MIB:.0f} |")
    print(f"| latents (parameters) | {_bytes(latents) / MIB:.0f} |")
    print(f"| latent gradients | {_bytes(p.grad for p in latents if p.grad is not None) / MIB:.0f} |")
    print(f"| network parameters and gradients | {2 * _bytes(network) / MIB:.1f} |")
    print(f"| optimiser state (Adam moments, SOAP preconditioners) | {_bytes(state) / MIB:.0f} |")
    print(f"| target planes (float32) | {_bytes([target.luma, target.chroma]) / MIB:.0f} |")
    print(f"| peak RSS before the step (torch, frame, model, optimiser) | {setup_peak / 1024:.0f} |")
    print(f"| **peak RSS of the process** | **{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}** |")


if __name__ == "__main__":
    main()
