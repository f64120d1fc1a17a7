"""The `vcodec` command line: encode, decode, info, psnr and sample, in the manner of ffmpeg and x265.

A thin layer over the `vcodec.sequence` modules and `vcodec.io`: it parses options, draws progress on
stderr and prints results. Every error a user can cause ends in one line on stderr (`vcodec: error:
...`) and an exit code from `ExitCode`; docs/cli.md lists them.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from enum import IntEnum
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vcodec import __version__
from vcodec.bitstream.container import BitstreamError
from vcodec.config import ConfigError
from vcodec.eval.errors import EvalError
from vcodec.help_text import hide_flag_types
from vcodec.io import (
    InputError,
    OptionError,
    OutputExistsError,
    VideoSource,
    open_video,
    parse_fps,
    parse_size,
    partial_path,
    video_format_of,
)
from vcodec.sequence.containers import open_container, open_for_decoding
from vcodec.sequence.decode import decode_sequence, parse_frame_range
from vcodec.sequence.info import describe_container
from vcodec.sequence.errors import ResumeError
from vcodec.types import ColorConversion, VcodecError

if TYPE_CHECKING:  # the encode-side modules load in the commands that use them: decode and info start faster
    from vcodec.sequence.reports import EncodeSummary, FrameStats, Progress


class ExitCode(IntEnum):
    """Exit status of `vcodec`; the one place they are defined (docs/cli.md has the table)."""

    OK = 0
    ERROR = 1  # an evaluation that cannot run or finish (vcodec eval, bdrate, plot)
    USAGE = 2  # bad or missing option or argument, unknown preset or rate point
    INPUT = 3  # the input video cannot be read as YUV 4:2:0 (size, format, odd dimensions, cut short)
    BITSTREAM = 4  # a container or frame bitstream is corrupted or truncated
    OUTPUT_EXISTS = 5  # the output exists and -y was not given
    IO = 6  # the operating system refused: file not found, permission denied, disk full
    RESUME = 7  # --resume cannot continue the interrupted encode with these options
    INTERNAL = 70  # a bug in vcodec (set VCODEC_DEBUG=1 to see the traceback)
    INTERRUPTED = 130  # Ctrl-C or SIGTERM; an encode keeps its finished frames for --resume
    BROKEN_PIPE = 141  # the reader of stdout went away (as `head` does); nothing is printed


class Interrupted(VcodecError):
    """The user stopped the run; the message says what was kept."""


# Every VcodecError subclass is listed here (a test checks it), most specific class first: the first
# match gives the code. The last line only catches a subclass that a later change forgets to list.
ERROR_CODES: tuple[tuple[type[BaseException], ExitCode], ...] = (
    (OptionError, ExitCode.USAGE),
    (ConfigError, ExitCode.USAGE),
    (InputError, ExitCode.INPUT),
    (BitstreamError, ExitCode.BITSTREAM),
    (OutputExistsError, ExitCode.OUTPUT_EXISTS),
    (ResumeError, ExitCode.RESUME),
    (Interrupted, ExitCode.INTERRUPTED),
    (EvalError, ExitCode.ERROR),
    (VcodecError, ExitCode.ERROR),
)


def exit_code_for(error: BaseException) -> ExitCode:
    for cls, code in ERROR_CODES:
        if isinstance(error, cls):
            return code
    if isinstance(error, OSError):
        return ExitCode.IO
    return ExitCode.INTERNAL


app = typer.Typer(
    name="vcodec",
    help="Neural intra codec for YUV 4:2:0 video: encode, decode and inspect .vcc streams.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"vcodec {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Neural intra codec for YUV 4:2:0 video: encode, decode and inspect .vcc streams."""


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def _psnr_text(y: float, u: float, v: float, yuv: float) -> str:
    return f"PSNR Y {y:.2f} U {u:.2f} V {v:.2f} YUV {yuv:.2f} dB"


def _open_input(
    path: str,
    size: str | None,
    pix_fmt: str | None,
    bitdepth: int | None,
    fps: str | None,
    start: int = 0,
    frames: int | None = None,
    conversion: ColorConversion | None = None,
) -> VideoSource:
    return open_video(
        path,
        size=parse_size(size) if size else None,
        pix_fmt=pix_fmt,
        bitdepth=bitdepth,
        fps=parse_fps(fps) if fps else None,
        start=start,
        frames=frames,
        conversion=conversion,
    )


# Input options shared by `encode` and `psnr`.
SizeOption = Annotated[
    str | None, typer.Option("--size", "-s", help="Raw input frame size WxH (else from the file name).")
]
PixFmtOption = Annotated[str | None, typer.Option("--pix-fmt", help="Raw input pixel format: yuv420p or yuv420p10le.")]
BitdepthOption = Annotated[
    int | None, typer.Option("--bitdepth", help="Raw input bit depth (8 or 10), like --pix-fmt.")
]
FpsOption = Annotated[
    str | None, typer.Option("--fps", "-r", help="Frame rate: 50, 29.97 or 30000/1001 (raw default 25).")
]
_DEFAULT_CONVERSION = ColorConversion()
ColorMatrixOption = Annotated[str | None, typer.Option(
    "--color-matrix", help=f"RGB picture input (PNG, JPEG, ...): the RGB to YUV matrix, bt601 or bt709 (default "
                           f"{_DEFAULT_CONVERSION.matrix}, as JPEG/JFIF). Stored in the file; decode -o OUT.png undoes it.")]
ColorRangeOption = Annotated[str | None, typer.Option(
    "--color-range", help=f"RGB picture input: full (0-255) or limited (16-235) YUV codes (default "
                          f"{_DEFAULT_CONVERSION.range}, as JPEG/JFIF). YUV PSNRs compare only under one conversion.")]
OverwriteOption = Annotated[bool, typer.Option("-y", "--overwrite", help="Overwrite existing output files.")]
QuietOption = Annotated[bool, typer.Option("-q", "--quiet", help="Print nothing but errors.")]


class ProgressBars:
    """tqdm bars on stderr: frames done of the total with ETA, and the training of the frame under way.

    With several jobs, the inner bar follows the lowest-numbered frame still being coded, the one the
    output waits for.
    """

    def __init__(self, quiet: bool, label: str) -> None:
        self._quiet = quiet
        self._label = label
        self._frames: Any = None
        self._steps: Any = None
        self._latest: dict[int, Progress] = {}
        self._finished: set[int] = set()
        self._shown = -1

    def started(self, total: int | None, already_done: int) -> None:
        if self._quiet:
            return
        from tqdm import tqdm

        if already_done:
            print(f"vcodec: resuming after {already_done} complete frames", file=sys.stderr)
        self._frames = tqdm(
            total=total, initial=already_done, unit="frame", desc=self._label, file=sys.stderr, disable=None,
            dynamic_ncols=True, position=0,
        )  # fmt: skip
        # Reports of parallel jobs arrive in bursts: a rate in it/s would mislead, the ETA does not.
        self._steps = tqdm(
            total=1, unit="it", file=sys.stderr, disable=None, dynamic_ncols=True, position=1, leave=False,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
        )  # fmt: skip

    def iteration(self, progress: Progress) -> None:
        if self._steps is None or progress.frame in self._finished:
            return
        self._latest[progress.frame] = progress
        current = min(self._latest)
        shown = self._latest[current]
        if current != self._shown:
            self._shown = current
            self._steps.reset(total=shown.total_iterations)
            self._steps.set_description(f"frame {current}")
        self._steps.update(shown.iteration - self._steps.n)
        self._steps.set_postfix(loss=f"{shown.loss:.4g}", psnr=f"{shown.psnr_yuv:.2f}", bpp=f"{shown.bpp:.3f}")

    def frame_done(self, stats: FrameStats) -> None:
        self._latest.pop(stats.number, None)
        self._finished.add(stats.number)
        if self._frames is None:
            return
        self._frames.update(1)
        self._frames.set_postfix(bpp=f"{stats.bpp:.3f}", psnr=f"{stats.psnr.yuv:.2f}")

    def close(self) -> None:
        for bar in (self._steps, self._frames):
            if bar is not None:
                bar.close()


def _encode_summary_line(summary: EncodeSummary) -> str:
    """One line in the manner of x265's: what was coded, its rate, its quality, the time it took."""
    info = summary.info
    rate = f"{summary.bpp:.4f} bpp, {summary.kbps:.2f} kbps"
    if summary.already_complete:
        return f"{summary.output} is already complete: {summary.frames} frames, {rate}"
    coded = f"encoded {len(summary.coded)} frames"
    if summary.resumed_frames:
        coded += f" after {summary.resumed_frames} resumed ({summary.frames} in all)"
    shape = f"{info.width}x{info.height} {info.bitdepth}-bit @ {float(info.fps):g} fps"
    parts = [f"{coded} {shape} in {summary.wall_seconds:.1f} s: {rate}"]
    psnr = summary.mean_psnr()
    if psnr is not None:
        parts.append(_psnr_text(psnr.y, psnr.u, psnr.v, psnr.yuv))
        encode_seconds = sum(s.encode_seconds for s in summary.coded)
        parts.append(f"encode {encode_seconds:.1f} s, decode {summary.decode_seconds:.2f} s")
        targeted = [s for s in summary.coded if s.target is not None]
        if targeted:
            missed = [str(s.number) for s in targeted if not s.within]
            parts.append(f"target {targeted[0].target.describe()}: {len(targeted) - len(missed)} of {len(targeted)} "
                         f"frames within tolerance" + (f" (missed: {', '.join(missed)})" if missed else ""))
    return ", ".join(parts) + f" -> {summary.output}"


@app.command()
def encode(
    input: Annotated[str, typer.Argument(help="Input video: .yuv, .y4m, any file FFmpeg reads, or - for stdin; or "
                                              "a picture (PNG, ...), converted from RGB by --color-matrix/--color-range.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output .vcc container.")],
    size: SizeOption = None,
    pix_fmt: PixFmtOption = None,
    bitdepth: BitdepthOption = None,
    fps: FpsOption = None,
    color_matrix: ColorMatrixOption = None,
    color_range: ColorRangeOption = None,
    frames: Annotated[int | None, typer.Option("--frames", "-n", help="Code at most N frames.")] = None,
    start: Annotated[int, typer.Option("--start", help="First frame of the input to code (0-based).")] = 0,
    lmbda: Annotated[float | None, typer.Option("--lmbda", "-l", help="Rate-distortion weight lambda.")] = None,
    rate: Annotated[str | None, typer.Option("--rate", help="Named rate point from cfg/rate_points.toml.")] = None,
    target_bpp: Annotated[float | None, typer.Option("--target-bpp", help="Rate control: each frame's bitstream at "
                                                     "B bits per pixel (within 3 %); lambda found per frame.")] = None,
    target_kbps: Annotated[float | None, typer.Option("--target-kbps", help="Rate control: the whole file at K "
                                                      "kbps (container included; frame rate from the input or --fps).")] = None,
    target_psnr: Annotated[float | None, typer.Option("--target-psnr", help="Rate control: each frame at P dB "
                                                      "PSNR-YUV (within 0.15 dB).")] = None,
    preset: Annotated[str, typer.Option("--preset", help="Encoder schedule: fast, medium or slow.")] = "medium",
    arch: Annotated[str, typer.Option("--arch", help="Decoder architecture: main, small, lean, light, tiny (cfg/arch), or auto: each frame picks one of the preset's candidates by coded RD cost (default).")] = "auto",
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Frames coded in parallel processes.")] = 1,
    threads: Annotated[
        int | None, typer.Option("--threads", help="Torch threads per job (default: cores // jobs).")
    ] = None,
    iterations: Annotated[int | None, typer.Option("--iterations", help="Override the preset's iterations.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the training.")] = 0,
    substreams: Annotated[int, typer.Option(
        "--substreams", min=0, max=16, help="Latent substreams per frame, decoded in parallel processes (1-16; a "
        "split costs a little rate). Default 0: 2 for frames of 256 rows or more, else 1.")] = 0,
    overwrite: OverwriteOption = False,
    quiet: QuietOption = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted encode after its last complete frame.")
    ] = False,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Write per-frame statistics to this CSV file.")] = None,
    keep_settings: Annotated[
        bool, typer.Option("--settings", help="Keep the encoder settings in the finished container (info shows "
                                              "them, and --resume can recognise a complete output; about 300 bytes).")
    ] = False,
    warm_start: Annotated[
        bool | None, typer.Option("--warm-start/--no-warm-start",
                                  help="Start each frame's training from the previous frame's model, in chains of "
                                       "the preset's warm_chain frames (every frame still decodes alone). Default: "
                                       "as the preset says (cfg/presets: warm_start).", show_default=False)
    ] = None,
) -> None:
    """Code every frame of a video, or one picture, into a .vcc container.

    A picture's RGB becomes YUV 4:2:0 by BT.601 full range (JPEG's conversion) unless --color-matrix and
    --color-range say otherwise; the file records it. A rate target (--target-bpp, --target-kbps,
    --target-psnr) codes every frame cold: it cannot be combined with --warm-start."""
    from vcodec.io.rgb import parse_conversion
    from vcodec.sequence.encode import encode_sequence
    from vcodec.sequence.settings import EncodeSettings, resolve_rate

    value, rate_name, target = resolve_rate(lmbda, rate, target_bpp, target_kbps, target_psnr)
    conversion = parse_conversion(color_matrix, color_range)
    settings = EncodeSettings(value, arch, preset, rate_name, iterations, seed, device, keep_in_file=keep_settings,
                              target=target, warm_start=warm_start, substreams=substreams)
    bars = ProgressBars(quiet, Path(input).name if input != "-" else "stdin")
    try:
        with _open_input(input, size, pix_fmt, bitdepth, fps, start, frames, conversion) as source:
            summary = encode_sequence(
                source, output, settings, start=start, jobs=jobs, threads=threads, overwrite=overwrite,
                resume=resume, csv_path=csv_path, observer=bars,
            )  # fmt: skip
    except KeyboardInterrupt:
        partial = partial_path(output)
        if partial.exists():
            raise Interrupted(f"interrupted; finished frames are kept in {partial}: add --resume to continue") from None
        raise Interrupted("interrupted") from None
    finally:
        bars.close()
    _say(quiet, _encode_summary_line(summary))


@app.command()
def decode(
    input: Annotated[str, typer.Argument(help="Input .vcc container, or - for stdin.")],
    output: Annotated[str, typer.Option("-o", "--output", help="Output .yuv, .y4m, .png (a file coded from a "
                                                                "picture), or - for stdout.")],
    frames: Annotated[
        str | None, typer.Option("--frames", help="Frames to decode: N (the first N), A:B (A to B-1), A: or :B.")
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help="raw, y4m or png (default: from the suffix; raw for -).")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Write nothing if the container is damaged (default: write the "
                                            "intact frames, skip the damaged ones, exit 4).")
    ] = False,
    overwrite: OverwriteOption = False,
    quiet: QuietOption = False,
) -> None:
    """Decode a .vcc container to planar YUV (10-bit as 2-byte little-endian) or y4m; a file coded from a
    picture also to PNG, converted back to RGB as the file records.

    Of a damaged container the intact frames are written, one line names the damaged ones, exit 4."""
    fmt = video_format_of(output, fmt, pictures=True)  # a wrong name fails before stdin is read or a frame decoded
    with open_for_decoding(input) as reader:
        selection = parse_frame_range(frames, reader.frame_count)
        if not reader.finished:
            warning = f"{reader.name} is unfinished; decoding its {reader.frame_count} complete frames"
            _say(quiet, f"vcodec: warning: {warning}")
        bars = None
        if not quiet:
            from tqdm import tqdm

            bars = tqdm(total=len(selection), unit="frame", desc="decode", file=sys.stderr, disable=None)
        began = time.perf_counter()
        try:
            summary = decode_sequence(
                reader, output, selection, fmt=fmt, overwrite=overwrite, strict=strict,
                on_frame=bars.update if bars else None,
            )  # fmt: skip
        finally:
            if bars is not None:
                bars.close()
    wall = time.perf_counter() - began
    rate = f"{summary.frames / summary.seconds:.2f} fps; " if summary.seconds > 0 else ""
    _say(
        quiet,
        f"decoded {summary.frames} frames {summary.info.width}x{summary.info.height} {summary.info.bitdepth}-bit "
        f"in {summary.seconds:.2f} s ({rate}{wall:.2f} s with I/O) -> {output}",
    )


SETTINGS_ORDER: tuple[str, ...] = ("preset", "arch", "lmbda", "rate", "iterations", "seed", "loss", "device", "start")
TARGET_UNITS: dict[str, str] = {"bpp": "bpp", "kbps": "kbps", "psnr": "dB PSNR-YUV"}


def _target_text(data: dict[str, Any]) -> str | None:
    """`Rate target: ...; reached ...` for a file coded by rate control (its settings say so)."""
    settings = data["settings"]
    target = settings.get("target")
    if not isinstance(target, dict) or len(target) != 1:
        return None
    kind, value = next(iter(target.items()))
    text = f"  Rate target: {value:g} {TARGET_UNITS.get(kind, kind)}"
    reached = settings.get("reached")
    if isinstance(reached, dict):
        shown = [f"{data['bitrate']['file_kbps']:.2f} kbps (file)"] if kind == "kbps" else []
        if "bpp" in reached:
            shown.append(f"{reached['bpp']:.4f} bpp")
        if "psnr_yuv" in reached:
            shown.append(f"{reached['psnr_yuv']:.2f} dB PSNR-YUV")
        text += "; reached " + ", ".join(shown)
        if "frames_within" in reached and "frames_coded" in reached:
            text += f"; {reached['frames_within']} of {reached['frames_coded']} frames within tolerance"
        if "probes" in reached:
            text += f", {reached['probes']} training runs"
    return text


def _info_text(data: dict[str, Any]) -> str:
    seq, rate, settings = data["sequence"], data["bitrate"], data["settings"]
    state = "complete" if data["complete"] else f"UNFINISHED ({data['trailing_bytes']} bytes of a cut-short frame)"
    if data["damaged_frames"]:
        state += f", DAMAGED frame(s) {', '.join(map(str, data['damaged_frames']))} (CRC or header check failed)"
    lines = [
        f"Input: {data['file']}: vcodec container v{data['format_version']}, {data['file_bytes']} bytes "
        f"({data['container_bytes']} of container), {state}",
        f"  Sequence: {seq['width']}x{seq['height']}, {seq['pix_fmt']} ({seq['bitdepth']}-bit "
        f"4:{':'.join(seq['chroma_format'][1:])}), {seq['fps']} fps ({float(Fraction(seq['fps'])):.3f}), "
        f"{seq['frame_count']} frames, {seq['duration_seconds']:.3f} s",
    ]
    picture = data["picture"]
    if picture:
        conversion = ColorConversion(picture["color_matrix"], picture["color_range"])
        lines.append(f"  Picture: {picture['width']}x{picture['height']} RGB, converted to YUV by {conversion} "
                     f"(color_matrix {conversion.matrix}, color_range {conversion.range})")
    arch = data["architecture"]
    if arch:
        name = arch.get("arch_name", arch.get("arch", "?"))
        mac = arch.get("mac_per_pixel")
        lines.append(f"  Architecture: {name}" + (f", {mac:.0f} MAC/pixel" if isinstance(mac, (int, float)) else ""))
    if settings:
        rest = sorted(set(settings) - set(SETTINGS_ORDER) - {"target", "reached"})
        order = [key for key in SETTINGS_ORDER if key in settings] + rest
        shown = ", ".join(f"{key} {settings[key]}" for key in order if settings[key] is not None)
        lines.append(f"  Settings: {shown}")
        target = _target_text(data)
        if target:
            lines.append(target)
    lines.append(f"  Bitrate: {rate['kbps']:.2f} kbps, {rate['bpp']:.4f} bpp, {rate['bytes']} bytes of frame data")
    lines.append("  frame      offset       bytes       bpp  header  arch")
    for frame in data["frames"]:
        header = "-" if frame["header_bytes"] is None else str(frame["header_bytes"])
        lines.append(f"  {frame['frame']:5d} {frame['offset']:11d} {frame['bytes']:11d} {frame['bpp']:9.4f} "
                     f"{header:>7}  {frame['arch']}")
    return "\n".join(lines)


@app.command()
def info(
    input: Annotated[str, typer.Argument(help="Input .vcc container, or - for stdin.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Describe a .vcc container, like ffprobe: sequence, architecture, settings, per-frame sizes.

    Every frame's CRC is checked: damaged frames are listed, and the exit status is then 4."""
    with open_container(input) as reader:
        data = describe_container(reader)
    print(json.dumps(data, indent=2) if as_json else _info_text(data))
    if data["damaged_frames"]:
        sys.stdout.flush()
        raise BitstreamError(f"{data['file']}: frame(s) {', '.join(map(str, data['damaged_frames']))} are damaged")


@app.command()
def psnr(
    reference: Annotated[str, typer.Argument(help="Reference video (the source).")],
    distorted: Annotated[str, typer.Argument(help="Distorted video (decoded), or - for stdin.")],
    size: SizeOption = None,
    pix_fmt: PixFmtOption = None,
    bitdepth: BitdepthOption = None,
    frames: Annotated[int | None, typer.Option("--frames", "-n", help="Compare at most N frames.")] = None,
    start: Annotated[int, typer.Option("--start", help="First frame of the reference to compare.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Per-frame and mean PSNR (HM peak, YUV weighted 6:1:1) of a decoded video against its source; of two
    pictures (PNG, ...), RGB PSNR per channel and over all three (peak 255; 65535 for 16-bit pictures).

    Raw inputs take --size and --pix-fmt (or their names); a y4m input describes itself.
    """
    from vcodec.sequence.psnr import compare_pictures, compare_sequences, mean_psnr, open_decoded, picture_pair

    if not (size or pix_fmt or bitdepth) and picture_pair(reference, distorted):  # (those options mean raw YUV)
        value = compare_pictures(reference, distorted)
        if as_json:
            print(json.dumps({"rgb": {"r": value.r, "g": value.g, "b": value.b, "mean": value.rgb}}, indent=2))
        else:
            print(f"PSNR RGB R {value.r:.2f} G {value.g:.2f} B {value.b:.2f} mean {value.rgb:.2f} dB")
        return
    with _open_input(reference, size, pix_fmt, bitdepth, None, start, frames) as ref:
        explicit = parse_size(size) if size else None
        dist, size_assumed = open_decoded(distorted, ref, size=explicit, pix_fmt=pix_fmt, bitdepth=bitdepth,
                                          frames=frames)
        with dist:
            values = compare_sequences(ref, dist, size_assumed)
    mean = mean_psnr(values)
    if as_json:
        rows = [{"frame": i, "y": p.y, "u": p.u, "v": p.v, "yuv": p.yuv} for i, p in enumerate(values)]
        print(json.dumps({"frames": rows, "mean": {"y": mean.y, "u": mean.u, "v": mean.v, "yuv": mean.yuv}}, indent=2))
        return
    for i, p in enumerate(values):
        print(f"frame {i}: {_psnr_text(p.y, p.u, p.v, p.yuv)}")
    print(f"mean of {len(values)} frames: {_psnr_text(mean.y, mean.u, mean.v, mean.yuv)}")


@app.command()
def sample(
    output: Annotated[str, typer.Option("-o", "--output", help="Output .yuv or .y4m (or - for stdout).")],
    size: Annotated[str, typer.Option("--size", "-s", help="Frame size WxH.")] = "416x240",
    frames: Annotated[int, typer.Option("--frames", "-n", help="Number of frames.")] = 3,
    bitdepth: Annotated[int, typer.Option("--bitdepth", help="8 or 10.")] = 8,
    photo: Annotated[
        str, typer.Option("--photo", help="Source photo: astronaut, coffee, chelsea, rocket, immunohistochemistry, ...")
    ] = "astronaut",
    fps: Annotated[str, typer.Option("--fps", "-r", help="Frame rate written in a y4m header.")] = "30",
    overwrite: OverwriteOption = False,
    quiet: QuietOption = False,
) -> None:
    """Write a short test clip cut from a scikit-image photo, panning 4 pixels a frame."""
    from vcodec.sequence.sample import write_sample

    width, height = parse_size(size)
    info = write_sample(output, width, height, frames, bitdepth, photo, parse_fps(fps), overwrite)
    _say(quiet, f"wrote {frames} frames {width}x{height} {info.pix_fmt} -> {output}")


def _fail(code: ExitCode, message: str) -> int:
    print(f"vcodec: error: {message}", file=sys.stderr, flush=True)
    return int(code)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _is_usage_error(error: Exception) -> bool:
    """Typer's parser errors (its vendored click's UsageError and BadParameter) carry a message and code 2."""
    return callable(getattr(error, "format_message", None)) and getattr(error, "exit_code", None) == 2


def _usage_message(error: Exception) -> str:
    context = getattr(error, "ctx", None)
    hint = f" (see 'vcodec {context.info_name} --help')" if context is not None and context.parent is not None else ""
    return f"{error.format_message()}{hint}"  # type: ignore[attr-defined]


EVALUATION_COMMANDS: tuple[str, ...] = ("eval", "bdrate", "plot")


def mount_evaluation() -> None:
    """`vcodec eval`, `vcodec bdrate` and `vcodec plot` live in vcodec.eval; they join this app here.

    Only when they can be asked for (their name, or a listing of the commands): the evaluation stack
    (bjontegaard, scipy, matplotlib) takes over a second to import, which encode, decode and info skip."""
    if any(command.name in EVALUATION_COMMANDS for command in app.registered_commands):
        return
    from vcodec.eval.cli import register

    register(app)


def _needs_evaluation(args: list[str]) -> bool:
    """Whether the command line names an evaluation command or lists the commands (no command given)."""
    command = next((arg for arg in args if not arg.startswith("-")), None)
    if command is None:
        return "--version" not in args
    return command in EVALUATION_COMMANDS


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code instead of printing a traceback."""
    # OpenMP threads that spin while waiting make training 3x slower as soon as another process
    # shares the cores (measured: 416x240, 2 threads, loaded 2-core machine: 56-63 s active, 19-20 s
    # passive). Set before torch loads libgomp; workers inherit it; an explicit setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Torch's large allocations in 2 MiB pages (read when its allocator starts): a 1080p decode takes 3-5x
    # fewer page faults (75-150 K -> 13-25 K); its time and training's moved within run-to-run noise.
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    args = list(sys.argv[1:] if argv is None else argv)
    if _needs_evaluation(args):
        mount_evaluation()
    command = typer.main.get_command(app)
    hide_flag_types(command)
    try:
        # Parsed and invoked here rather than through `command.main`, whose handler turns a broken pipe
        # into exit 1 before it could reach the BrokenPipeError clause below.
        with command.make_context("vcodec", args) as context:
            result = command.invoke(context)
        sys.stdout.flush()  # a reader that left shows here, not in the interpreter's last flush
        code = int(result) if isinstance(result, int) else int(ExitCode.OK)
    except typer.Exit as done:
        code = int(done.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        code = _fail(ExitCode.INTERRUPTED, "interrupted")
    except BrokenPipeError:
        # The reader went away: silence the final flush of stdout, as other Unix tools exit quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = int(ExitCode.BROKEN_PIPE)
    except VcodecError as error:
        code = _fail(exit_code_for(error), str(error))
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        code = _fail(ExitCode.IO, f"{where}{error.strerror or error}")
    except Exception as error:
        if _is_usage_error(error):
            return _fail(ExitCode.USAGE, _usage_message(error))
        # Anything else is a bug: say so on one line unless asked for the traceback.
        if os.environ.get("VCODEC_DEBUG"):
            raise
        code = _fail(
            ExitCode.INTERNAL, f"internal error: {type(error).__name__}: {error} (set VCODEC_DEBUG=1 for a traceback)"
        )
    return code


def run() -> None:
    """The process entry point (`vcodec`, `python -m vcodec`): main(), then exit with its code.

    Once torch is loaded, the interpreter's own teardown takes 0.23 s (measured: a process that imports
    torch and the decoder, 0.234 s from its last line to its end, 0.011 s with os._exit), a fifth of a
    1080p `vcodec decode`. So a command that has nothing left to finish (its files are written, closed
    and renamed when main returns; no child process alive) flushes its streams and leaves at once. The
    evaluation commands, whose Dask workers and plotting back-ends keep their own exit handlers, and
    in-process callers of main() (the tests) exit as usual.
    """
    code = main()
    if "torch" in sys.modules and not _needs_evaluation(sys.argv[1:]):
        import multiprocessing

        if not multiprocessing.active_children():
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass  # a reader that left: nothing more can reach it
            os._exit(code)
    sys.exit(code)
