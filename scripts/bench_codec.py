#!/usr/bin/env python3
"""Benchmark of the intra codec (rerunnable by anyone): RD points per preset, parameter-bit share,
encode and decode times, training throughput, MAC/pixel, and nearest vs mean chroma downscale.

    .venv/bin/python scripts/bench_codec.py                       # everything (long: slow preset)
    .venv/bin/python scripts/bench_codec.py --presets fast --json bench.json
    .venv/bin/python scripts/bench_codec.py --presets "" --skip throughput,chroma,startup  # decode rows only

Prints a markdown report on stdout. Timings are wall-clock seconds in this process (start excluded);
peak memory is measured in a fresh child process per figure (this script, re-run with --child-memory).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning: on shared or busy cores spinning costs up to 3x.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# As the command line: torch's large allocations in 2 MiB pages (vcodec/allocator.py).
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import torch  # noqa: E402  (after the OpenMP setting)

from vcodec.config import load_arch, load_config
from vcodec.bitstream.container import ContainerWriter, SequenceHeader
from vcodec.bitstream.frame_header import parse_header
from vcodec.bitstream.frame_info import read_frame_info
from vcodec.decoder import StageTimes, decode_frame
from vcodec.encoder import encode_frame_report
from vcodec.allocator import retain_freed_memory
from vcodec.encoder.encode import write_bitstream
from vcodec.encoder.quantize import QuantizedParameters
from vcodec.bitstream.frame_header import FORMAT_VERSION
from vcodec.entropy.param_coder import parameter_groups, quantize, scale_index_for
from vcodec.eval.hevc import decode_hevc, encode_x265, split_access_units
from vcodec.encoder.target import make_target
from vcodec.encoder.train import QuantizerSetting, rd_loss
from vcodec.metrics import frame_psnr
from vcodec.model.complexity import macs_per_pixel
from vcodec.model.frame_model import FrameModel
from vcodec.model.parameters import flat_parameters
from vcodec.shapes import parameter_shapes
from vcodec.samples import sample_frames

LAMBDAS = (0.0001, 0.0004, 0.001, 0.004)
SKIPPABLE = {"throughput", "chroma", "hd-decode", "startup", "memory", "hevc"}
MEMORY_SIZES = ((1920, 1080), (3840, 2160))
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
    model = FrameModel(load_arch(arch), height, width, memory_saving_pixels=preset.memory_saving_pixels)
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
    return decode_split(data, repeats)["wall"]


def decode_split(data: bytes, repeats: int = 3, workers: int | None = None) -> dict[str, float]:
    """Best of `repeats` decodes: its wall time and the seconds of each decoder stage (StageTimes) of
    this process (with worker processes, its own share of the substreams and the wait for the others).
    workers: as decode_frame's (None: the decoder's choice)."""
    best: dict[str, float] = {"wall": float("inf")}
    for _ in range(repeats):
        times = StageTimes()
        start = time.perf_counter()
        decode_frame(data, times, workers)
        wall = time.perf_counter() - start
        if wall < best["wall"]:
            best = {"wall": wall, **times.seconds}
    return best


def decode_process_seconds(data: bytes, width: int, height: int, repeats: int = 3) -> dict[str, float]:
    """Whole-process wall time of `vcodec decode` of a one-frame container of `data` to a .yuv file
    (process start, imports and the write included): best and median of `repeats`, after a warm-up."""
    with tempfile.TemporaryDirectory() as scratch:
        container, output = Path(scratch) / "frame.vcc", Path(scratch) / "frame.yuv"
        writer = ContainerWriter.create(container, SequenceHeader(width, height, 8, Fraction(30)))
        writer.append(data)
        writer.finish()
        writer.close()
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "vcodec", "decode", str(container), "-o", str(output), "-y", "-q"],
                           check=True, capture_output=True)
            times.append(time.perf_counter() - start)
    return {"best": min(times[1:]), "median": statistics.median(times[1:])}


def hevc_decode_comparison(frame, vcodec_bytes: int, vcodec_seconds: float, repeats: int = 3) -> dict:
    """FFmpeg's HEVC decode (PyAV) of an x265 intra frame of the same picture, its QP chosen so that its
    size is nearest vcodec's (a few x265 encodes, preset slow, the HM-like anchor parameters)."""
    tried: dict[int, bytes] = {}
    qp = 37
    for step in (8, 4, 2, 1):
        for candidate in (qp - step, qp, qp + step):
            if 0 <= candidate <= 51 and candidate not in tried:
                tried[candidate] = encode_x265(frame, candidate, "slow")
        qp = min(tried, key=lambda q: abs(len(tried[q]) - vcodec_bytes))
    units = split_access_units(tried[qp])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        decode_hevc(units)
        best = min(best, time.perf_counter() - start)
    return {"qp": qp, "hevc_bytes": len(tried[qp]), "hevc_decode_seconds": best,
            "vcodec_bytes": vcodec_bytes, "vcodec_decode_seconds": vcodec_seconds, "ratio": vcodec_seconds / best}


def synthetic_bitstream(width: int, height: int, arch: str = "main") -> bytes:
    """A frame bitstream with every latent grid coded, without training (a 3840x2160 encode would take
    hours here): Laplace-distributed latents (about half non-zero, as trained ones), the freshly
    initialised networks quantised at fixed steps. Decoding it costs what decoding a real frame costs."""
    frame = sample_frames(width, height, 1, 8, "astronaut")[0]
    torch.manual_seed(0)
    model = FrameModel(load_arch(arch), height, width)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for latent in model.latents:
            uniform = torch.rand(latent.shape, generator=generator) - 0.5
            latent.copy_(-0.8 * torch.sign(uniform) * torch.log1p(-2 * uniform.abs()))
    step_exps, integers, scales = [], [], []
    groups = parameter_groups(parameter_shapes(model.arch), FORMAT_VERSION)
    for group in groups:
        step_exp = 12 if group.names[0].endswith("bias") else 10
        values = quantize(flat_parameters(group.tensors(model)), step_exp)
        step_exps.append(step_exp)
        integers.append(values)
        scales.append(scale_index_for(values))
    params = QuantizedParameters(groups, tuple(step_exps), tuple(integers), tuple(scales))
    return write_bitstream(frame, model, params)[0]


def child_peak_memory(kind: str, width: int, height: int, arch: str) -> None:
    """Run in a fresh process (--child-memory): one training step (on the memory-saving path where the
    default preset puts a frame of this size) or one decode, then print the process's peak resident set
    size in bytes."""
    if kind == "train":
        retain_freed_memory()
        torch.set_num_threads(1)
        frame = sample_frames(width, height, 1, 8, "astronaut")[0]
        preset = load_config(arch).preset
        setting = QuantizerSetting(preset.noise_quantizer, preset.softround_temperature[0], preset.noise,
                                   preset.noise_parameter[0])
        model = FrameModel(load_arch(arch), height, width, memory_saving_pixels=preset.memory_saving_pixels)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        loss, _, _ = rd_loss(model, make_target(frame, "cpu"), 0.001, "mse", setting)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    else:
        decode_frame(Path(kind).read_bytes())
        # This process's peak plus that of its substream worker (a forked child, whose resident pages
        # partly are this process's, shared): an upper bound of the decode's memory.
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
               + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) * 1024)


def peak_memory(kind: str, width: int, height: int, arch: str) -> int:
    """Peak RSS (bytes) of one training step (kind "train") or of decoding the file `kind`, in a child."""
    result = subprocess.run([sys.executable, __file__, "--child-memory", kind, "--size", f"{width}x{height}",
                             "--arch", arch], check=True, capture_output=True, text=True)
    return int(result.stdout.split()[-1])


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
    parser.add_argument("--hd-lambda", type=float, default=0.0001,
                        help="lambda of that frame (1e-4 codes all 7 latent grids after 100 iterations)")
    parser.add_argument("--sd-file", type=Path, help="time this 416x240 frame bitstream (instead of the first RD point)")
    parser.add_argument("--hd-file", type=Path, help="time this 1920x1080 frame bitstream (of --photo) instead "
                        "of encoding one; the HEVC anchor is encoded from the same picture")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    parser.add_argument("--child-memory", help=argparse.SUPPRESS)
    parser.add_argument("--size", default="1920x1080", help=argparse.SUPPRESS)
    parser.add_argument("--skip", default="", help="comma-separated parts not to run: throughput, chroma, "
                        "hd-decode, startup, memory, hevc (to run the long preset rows on their own)")
    args = parser.parse_args()
    if args.child_memory:
        width, height = (int(v) for v in args.size.split("x"))
        child_peak_memory(args.child_memory, width, height, args.arch)
        return
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
    if points or args.sd_file:
        report["decode_split_416x240"] = decode_split(args.sd_file.read_bytes() if args.sd_file else points[0]["data"])
        report["decode_seconds_416x240"] = report["decode_split_416x240"]["wall"]
    else:
        report["decode_seconds_416x240"] = None

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
        hd = sample_frames(1920, 1080, 1, 8, args.photo)[0]
        if args.hd_file:
            hd_data = args.hd_file.read_bytes()
            report["hd_frame"] = {"file": str(args.hd_file), "psnr_yuv": frame_psnr(hd, decode_frame(hd_data)).yuv}
        else:
            log(f"encode 1920x1080 ({args.hd_iterations} iterations) for the decode timing ...")
            hd_encoded = encode_frame_report(hd, args.hd_lambda, load_config(
                args.arch, "fast", iterations=args.hd_iterations, learning_rate=0.02))
            hd_data = hd_encoded.data
            report["hd_frame"] = {"lambda": args.hd_lambda, "psnr_yuv": hd_encoded.psnr.yuv,
                                  "encode_seconds": hd_encoded.seconds}
        report["hd_frame"].update(bytes=len(hd_data), coded_grids=read_frame_info(hd_data).coded_grids)
        hd_header = parse_header(hd_data)[0]
        report["hd_frame"].update(frame_version=hd_header.version, latent_substreams=hd_header.latent_substreams)
        report["decode_split_1920x1080"] = decode_split(hd_data)
        report["decode_seconds_1920x1080"] = report["decode_split_1920x1080"]["wall"]
        report["decode_seconds_1920x1080_one_process"] = decode_split(hd_data, workers=1)["wall"]
        log("whole-process vcodec decode of the 1920x1080 frame ...")
        report["decode_process_seconds_1920x1080"] = decode_process_seconds(hd_data, 1920, 1080)
        if "hevc" not in skip:
            log("x265 intra frame of the same picture, FFmpeg HEVC decode ...")
            report["hevc_decode_1920x1080"] = hevc_decode_comparison(hd, len(hd_data), report["decode_seconds_1920x1080"])

    if "memory" not in skip:
        with tempfile.TemporaryDirectory() as scratch:
            memory: dict[str, dict[str, int]] = {}
            for width, height in MEMORY_SIZES:
                size = f"{width}x{height}"
                log(f"peak memory at {size}: one training step, one decode (child processes) ...")
                path = Path(scratch) / f"{size}.vcc"
                path.write_bytes(synthetic_bitstream(width, height, args.arch))
                memory[size] = {"train_step": peak_memory("train", width, height, args.arch),
                                "decode": peak_memory(str(path), width, height, args.arch)}
            report["peak_rss_bytes"] = memory

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
        hd = report["hd_frame"]
        lines[-1] += (f"; decode 1920x1080: {report['decode_seconds_1920x1080']:.3f} s, in one process "
                      f"{report['decode_seconds_1920x1080_one_process']:.3f} s ({hd['coded_grids']} coded grids, "
                      f"{hd['bytes']} bytes, frame format {hd['frame_version']}, {hd['latent_substreams']} latent substreams)")
        process = report["decode_process_seconds_1920x1080"]
        lines.append(f"Whole-process `vcodec decode` of that frame (best / median of 3): "
                     f"{process['best']:.3f} / {process['median']:.3f} s")
    splits = {size: report[f"decode_split_{size}"] for size in ("416x240", "1920x1080") if f"decode_split_{size}" in report}
    if splits:
        stages = list(dict.fromkeys(stage for split in splits.values() for stage in split if stage != "wall"))
        lines += ["", "Decode time by stage (seconds, the best of 3 decodes):", "",
                  "| stage | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
        for stage in [*stages, "wall"]:
            lines.append(f"| {stage} | " + " | ".join(f"{split.get(stage, 0.0):.3f}" for split in splits.values()) + " |")
    if "hevc_decode_1920x1080" in report:
        h = report["hevc_decode_1920x1080"]
        lines += ["", f"1920x1080 decode against FFmpeg HEVC (PyAV, x265 slow intra, QP {h['qp']}, {h['hevc_bytes']} "
                      f"bytes; vcodec {h['vcodec_bytes']} bytes): HEVC {h['hevc_decode_seconds']:.4f} s, vcodec "
                      f"{h['vcodec_decode_seconds']:.3f} s, ratio {h['ratio']:.1f}x"]
    if "peak_rss_bytes" in report:
        lines += ["", "| peak RSS (child process) | one training step | one decode |", "|---|---|---|"]
        for size, figures in report["peak_rss_bytes"].items():
            lines.append(f"| {size} | {figures['train_step'] / 2**30:.2f} GiB | {figures['decode'] / 2**30:.2f} GiB |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
