#!/usr/bin/env python3
"""Benchmark of the intra codec (rerunnable by anyone): RD points per preset, parameter-bit share,
encode and decode times, training throughput, MAC/pixel, and nearest vs mean chroma downscale.

    .venv/bin/python scripts/bench_codec.py                       # everything (long: slow preset)
    .venv/bin/python scripts/bench_codec.py --presets fast --json bench.json

Prints a markdown report on stdout. Timings are wall-clock seconds in this process (start excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning: on shared or busy cores spinning costs up to 3x.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402  (after the OpenMP setting)

from vcodec.config import load_arch, load_config
from vcodec.bitstream.frame_info import read_frame_info
from vcodec.decoder import decode_frame
from vcodec.encoder import encode_frame_report
from vcodec.encoder.allocator import retain_freed_memory
from vcodec.encoder.target import make_target
from vcodec.encoder.train import QuantizerSetting, rd_loss
from vcodec.metrics import frame_psnr
from vcodec.model.complexity import macs_per_pixel
from vcodec.model.frame_model import FrameModel
from vcodec.samples import sample_frames

LAMBDAS = (0.0001, 0.0004, 0.001, 0.004)
SKIPPABLE = {"throughput", "chroma", "hd-decode", "startup"}
GOLDEN_FILE = Path(__file__).resolve().parent.parent / "tests" / "golden" / "v3" / "light_8bit_2f.vcc"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def training_throughput(arch: str, width: int, height: int, iterations: int, threads: int) -> float:
    """Pixel-iterations per second of the training step (forward, backward, Adam) on a real photo,
    with `threads` torch threads: the median of 5 timed blocks (shared machines drift). The step is
    the first phase of the default preset (its quantizer), with the allocator set up as train() does."""
    retain_freed_memory()
    preset = load_config(arch).preset
    setting = QuantizerSetting(preset.noise_quantizer, preset.softround_temperature[0], preset.noise,
                               preset.noise_parameter[0])
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    frame = sample_frames(width, height, 1, 8, "astronaut")[0]
    torch.manual_seed(0)
    model = FrameModel(load_arch(arch), height, width)
    target = make_target(frame, "cpu")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

    def step() -> None:
        loss, _, _ = rd_loss(model, target, 0.001, "mse", setting)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    block = max(1, iterations // 5)
    rates = []
    try:
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(block):
                step()
            rates.append(width * height * block / (time.perf_counter() - start))
    finally:
        torch.set_num_threads(previous)
    return statistics.median(rates)


def cli_startup_seconds(repeats: int = 5) -> dict[str, dict[str, float]]:
    """Whole-process wall time (process start included) of `vcodec --version` and `vcodec info` on a
    golden file: best and median of `repeats`, after one warm-up run."""
    commands = {"version": ["--version"], "info": ["info", str(GOLDEN_FILE)]}
    figures = {}
    for name, args in commands.items():
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "vcodec", *args], check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        figures[name] = {"best": min(times[1:]), "median": statistics.median(times[1:])}
    return figures


def decode_seconds(data: bytes, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        decode_frame(data)
        best = min(best, time.perf_counter() - start)
    return best


def rd_point(frame, lmbda: float, preset: str, arch: str, **overrides) -> dict:
    encoded = encode_frame_report(frame, lmbda, load_config(arch, preset, **overrides))
    psnr = frame_psnr(frame, decode_frame(encoded.data))  # from decoded output, not the encoder's report
    pixels = frame.width * frame.height
    return {
        "preset": preset, "arch": arch, "lmbda": lmbda, **overrides,
        "bytes": len(encoded.data), "bpp": 8 * len(encoded.data) / pixels,
        "param_share": encoded.parameter_bits / encoded.bits, "header_bits": encoded.header_bits,
        "psnr_y": psnr.y, "psnr_u": psnr.u, "psnr_v": psnr.v, "psnr_yuv": psnr.yuv,
        "encode_seconds": encoded.seconds, "data": encoded.data,
    }


def bd_rate(anchor: list[dict], test: list[dict]) -> float | None:
    try:
        import bjontegaard
        return float(bjontegaard.bd_rate([p["bpp"] for p in anchor], [p["psnr_yuv"] for p in anchor],
                                         [p["bpp"] for p in test], [p["psnr_yuv"] for p in test],
                                         method="akima"))
    except Exception as error:  # too few or non-overlapping points: report, never invent a number
        log(f"BD-rate unavailable: {error}")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="fast,medium,slow")
    parser.add_argument("--lambdas", default=",".join(str(x) for x in LAMBDAS))
    parser.add_argument("--arch", default="main")
    parser.add_argument("--photo", default="astronaut")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--throughput-iterations", type=int, default=40)
    parser.add_argument("--hd-iterations", type=int, default=100,
                        help="training iterations of the 1920x1080 frame whose decode is timed")
    parser.add_argument("--chroma-preset", default="fast", help="preset of the nearest-vs-mean comparison")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    parser.add_argument("--skip", default="", help="comma-separated parts not to run: throughput, chroma, "
                        "hd-decode, startup (to run the long preset rows on their own)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    presets = [p for p in args.presets.split(",") if p]
    skip = {part for part in args.skip.split(",") if part}
    if skip - SKIPPABLE:
        parser.error(f"--skip takes {', '.join(sorted(SKIPPABLE))}")
    lambdas = [float(x) for x in args.lambdas.split(",")]
    frame = sample_frames(416, 240, 1, 8, args.photo)[0]
    report: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                    "threads": args.threads, "torch": torch.__version__}

    report["mac_per_pixel"] = {arch: macs_per_pixel(load_arch(arch)) for arch in ("main", "small", "light", "tiny")}
    if "startup" not in skip:
        log("command-line start-up ...")
        report["cli_startup_seconds"] = cli_startup_seconds()
    if "throughput" not in skip:
        log("training throughput, 1 thread and all threads ...")
        report["training_pixel_iterations_per_second_1_thread"] = training_throughput(
            args.arch, 416, 240, args.throughput_iterations, 1)
        report["training_pixel_iterations_per_second"] = training_throughput(
            args.arch, 416, 240, args.throughput_iterations, args.threads)

    points = []
    for preset in presets:
        for lmbda in lambdas:
            log(f"encode 416x240 preset={preset} lambda={lmbda} ...")
            points.append(rd_point(frame, lmbda, preset, args.arch))
    report["decode_seconds_416x240"] = decode_seconds(points[0]["data"]) if points else None

    if "chroma" not in skip:
        log("chroma downscale: nearest vs mean ...")
        default_mode = load_arch(args.arch).chroma_downscale
        chroma: dict[str, list[dict]] = {}
        for mode in ("mean", "nearest"):
            if mode == default_mode and args.chroma_preset in presets:
                chroma[mode] = [p for p in points if p["preset"] == args.chroma_preset]  # encoded above
            else:
                chroma[mode] = [rd_point(frame, lmbda, args.chroma_preset, args.arch, chroma_downscale=mode)
                                for lmbda in lambdas]
        report["chroma_bd_rate_nearest_vs_mean"] = bd_rate(chroma["mean"], chroma["nearest"])
        report["chroma_points"] = {mode: strip(rows) for mode, rows in chroma.items()}

    if "hd-decode" not in skip:
        log(f"encode 1920x1080 ({args.hd_iterations} iterations) for the decode timing ...")
        hd = sample_frames(1920, 1080, 1, 8, args.photo)[0]
        hd_encoded = encode_frame_report(hd, 0.001, load_config(args.arch, "fast", iterations=args.hd_iterations,
                                                                learning_rate=0.02))
        report["decode_seconds_1920x1080"] = decode_seconds(hd_encoded.data, repeats=2)
        report["hd_frame"] = {"bytes": len(hd_encoded.data),
                              "coded_grids": read_frame_info(hd_encoded.data).coded_grids,
                              "psnr_yuv": hd_encoded.psnr.yuv, "encode_seconds": hd_encoded.seconds}

    report["rd_points"] = strip(points)
    print(render(report))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


def strip(rows: list[dict]) -> list[dict]:
    """The rows without their bitstreams (for the report and JSON)."""
    return [{k: v for k, v in row.items() if k != "data"} for row in rows]


def render(report: dict) -> str:
    """The report as markdown; parts left out with --skip are left out here too."""
    lines = [f"# vcodec codec benchmark ({report['machine']}, torch {report['torch']}, {report['threads']} threads)", ""]
    lines.append("| arch | MAC/pixel (1080p) | ARM | upsampling | synthesis |")
    lines.append("|---|---|---|---|---|")
    for arch, m in report["mac_per_pixel"].items():
        lines.append(f"| {arch} | {m['total']:.0f} | {m['arm']:.0f} | {m['upsampling']:.0f} | {m['synthesis']:.0f} |")
    if "training_pixel_iterations_per_second" in report:
        one, every = report["training_pixel_iterations_per_second_1_thread"], report["training_pixel_iterations_per_second"]
        lines += ["", f"Training throughput (main, 416x240, the default preset's first-phase step, median of 5 blocks): 1 thread (one core) "
                      f"{one / 1e6:.3f} M pixel-iterations/s; {report['threads']} thread(s) {every / 1e6:.3f} M "
                      f"= {every / report['threads'] / 1e6:.3f} M per core"]
    lines += ["", "| preset | lambda | bpp | param share | PSNR-Y | PSNR-U | PSNR-V | PSNR-YUV | encode s |"]
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for p in report["rd_points"]:
        lines.append(f"| {p['preset']} | {p['lmbda']} | {p['bpp']:.4f} | {100 * p['param_share']:.1f} % | "
                     f"{p['psnr_y']:.2f} | {p['psnr_u']:.2f} | {p['psnr_v']:.2f} | {p['psnr_yuv']:.2f} | "
                     f"{p['encode_seconds']:.1f} |")
    if "chroma_points" in report:
        lines += ["", "Chroma downscale (" + "; ".join(
            f"{mode}: " + ", ".join(f"{p['bpp']:.3f} bpp/{p['psnr_yuv']:.2f} dB" for p in rows)
            for mode, rows in report["chroma_points"].items()) + ")"]
        bd = report["chroma_bd_rate_nearest_vs_mean"]
        lines.append(f"BD-rate (PSNR-YUV) of nearest vs mean: {'n/a' if bd is None else f'{bd:+.2f} %'}")
    if "cli_startup_seconds" in report:
        startup = report["cli_startup_seconds"]
        lines += ["", "Start-up, whole process (best / median of 5): " + "; ".join(
            f"`vcodec {'--version' if name == 'version' else 'info x.vcc'}` {t['best']:.3f} / {t['median']:.3f} s"
            for name, t in startup.items())]
    d416 = report["decode_seconds_416x240"]
    lines += ["", f"Decode 416x240: {'n/a' if d416 is None else f'{d416:.3f} s'}"]
    if "decode_seconds_1920x1080" in report:
        lines[-1] += (f"; decode 1920x1080: {report['decode_seconds_1920x1080']:.3f} s "
                      f"({report['hd_frame']['coded_grids']} coded grids, {report['hd_frame']['bytes']} bytes)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
