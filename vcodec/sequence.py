"""Whole sequences: code every frame of a video into a `.vcc` container, decode ranges of one, describe it.

These are the library functions behind `vcodec encode`, `decode`, `info`, `psnr` and `sample`; the
command line only parses options and prints. Frames are independent, so an encode can run them in
several worker processes, and can stop and resume at any frame: each finished frame is appended to
`<output>.partial` and made durable before the next is written, and the partial file is renamed over
the output only when the sequence is complete.
"""

from __future__ import annotations

import csv
import ctypes
import hashlib
import itertools
import multiprocessing
import os
import queue
import signal
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, is_dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Protocol


from vcodec import __version__
from vcodec.bitstream.container import FORMAT_VERSION, ContainerReader, ContainerWriter, SequenceHeader
from vcodec.bitstream.salvage import DamagedFrame, SalvageReader
from vcodec.config import EncoderConfig, load_config, load_rate_points
from vcodec.format import check_frame_size
from vcodec.io import (
    STDIN,
    InputError,
    OptionError,
    OutputExistsError,
    VideoInfo,
    VideoSource,
    check_overwrite,
    frame_to_bytes,
    open_video,
    open_video_writer,
    partial_path,
)
from vcodec.io.formats import RAW_SUFFIXES, bitdepth_of_pix_fmt, frame_bytes
from vcodec.io.names import infer_from_name
from vcodec.io.output import commit_partial
from vcodec.io.raw import RawReader
from vcodec.metrics import FramePsnr, frame_psnr
from vcodec.types import BitstreamError, Frame, VcodecError


CONTAINER_SUFFIX = ".vcc"

# Settings recorded in the container that must match for `--resume` to continue a file.
RESUME_KEYS: tuple[str, ...] = ("arch", "preset", "lmbda", "iterations", "seed", "loss", "start")

CSV_COLUMNS: tuple[str, ...] = (
    "frame", "bits", "bpp", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv",
    "lmbda", "preset", "encode_seconds", "decode_seconds", "arch",
)  # fmt: skip


# The container setting that identifies the input: the sha256 of its first coded frame.
SOURCE_DIGEST_KEY = "first_frame_sha256"


def source_digest(frame: Frame) -> str:
    """sha256 of a frame's samples as raw planar YUV (8-bit: a byte a sample; 10-bit: 2 bytes, little-endian).

    Stored for the first frame an encode codes, so that `--resume` can refuse another clip of the same
    format, which would otherwise be spliced onto the frames already coded.
    """
    return hashlib.sha256(frame_to_bytes(frame)).hexdigest()


class ResumeError(VcodecError):
    """An interrupted encode cannot be continued with the options given (different settings or input)."""


def resolve_lambda(lmbda: float | None, rate: str | None) -> tuple[float, str | None]:
    """The lambda to code with, from `--lmbda` or a named `--rate` (not both)."""
    if lmbda is not None and rate is not None:
        raise OptionError("give either --lmbda or --rate, not both")
    if rate is not None:
        points = load_rate_points()
        if rate not in points:
            raise OptionError(f"unknown rate point {rate!r} (defined: {', '.join(points)})")
        return points[rate], rate
    if lmbda is None:
        raise OptionError("give a rate: --lmbda LAMBDA or --rate NAME (e.g. --rate r2)")
    return check_lambda(lmbda), None


def check_lambda(lmbda: float) -> float:
    """The encoder trains only for 0 < lambda < 1; refuse anything else before any work is done."""
    if not 0.0 < lmbda < 1.0:
        raise OptionError(f"--lmbda {lmbda} is out of range: it must be above 0 and below 1 (e.g. 0.001)")
    return lmbda


@dataclass(frozen=True)
class EncodeSettings:
    """What the user chose for an encode; `iterations` overrides the preset's when given."""

    lmbda: float
    arch: str = "auto"
    preset: str = "medium"
    rate: str | None = None
    iterations: int | None = None
    seed: int = 0
    device: str = "cpu"
    loss: str = "logmse"

    def __post_init__(self) -> None:
        check_lambda(self.lmbda)

    def encoder_config(self) -> EncoderConfig:
        return load_config(
            self.arch, self.preset, iterations=self.iterations, device=self.device, seed=self.seed, loss=self.loss
        )

    def record(self, config: EncoderConfig, start: int, first_frame: Frame) -> dict[str, Any]:
        """The settings stored in the container header (informative, and checked by `--resume`)."""
        return {
            "encoder": f"vcodec {__version__}",
            "arch": self.arch,
            "preset": self.preset,
            "lmbda": self.lmbda,
            "rate": self.rate,
            "iterations": config.preset.iterations,
            "seed": self.seed,
            "loss": self.loss,
            "device": self.device,
            "start": start,
            SOURCE_DIGEST_KEY: source_digest(first_frame),
        }


@dataclass(frozen=True)
class FrameStats:
    """One coded frame as measured after decoding its bitstream."""

    number: int
    bits: int
    bpp: float
    psnr: FramePsnr
    encode_seconds: float
    decode_seconds: float
    arch: str = ""  # the decoder architecture written (the pick of --arch auto)

    def csv_row(self, lmbda: float, preset: str) -> list[str]:
        p = self.psnr
        quality = [f"{value:.4f}" for value in (p.y, p.u, p.v, p.yuv)]
        times = [f"{self.encode_seconds:.3f}", f"{self.decode_seconds:.4f}"]
        return [str(self.number), str(self.bits), f"{self.bpp:.6f}", *quality, repr(lmbda), preset, *times, self.arch]


@dataclass(frozen=True)
class Progress:
    """One training step of one frame, as the encoder reports it."""

    frame: int
    iteration: int
    total_iterations: int
    loss: float
    psnr_yuv: float
    bpp: float


class EncodeObserver(Protocol):
    """What an encode reports while it runs (the CLI draws progress bars from it)."""

    def started(self, total: int | None, already_done: int) -> None: ...

    def iteration(self, progress: Progress) -> None: ...

    def frame_done(self, stats: FrameStats) -> None: ...


class SilentObserver:
    def started(self, total: int | None, already_done: int) -> None:
        pass

    def iteration(self, progress: Progress) -> None:
        pass

    def frame_done(self, stats: FrameStats) -> None:
        pass


@dataclass
class EncodeSummary:
    """The whole output file (bytes, rate) and the frames coded by this run (quality, time)."""

    output: Path
    info: VideoInfo
    frames: int
    total_bytes: int
    resumed_frames: int
    coded: list[FrameStats] = field(default_factory=list)
    wall_seconds: float = 0.0
    already_complete: bool = False

    @property
    def bpp(self) -> float:
        return 8 * self.total_bytes / (self.frames * self.info.width * self.info.height)

    @property
    def kbps(self) -> float:
        return 8 * self.total_bytes / self.frames * float(self.info.fps) / 1000

    def mean_psnr(self) -> FramePsnr | None:
        return mean_psnr([s.psnr for s in self.coded]) if self.coded else None

    @property
    def decode_seconds(self) -> float:
        return sum(s.decode_seconds for s in self.coded)


# --- encoding one frame (in this process or in a worker) -------------------------------------------

_worker_progress: Any = None


# prctl(2) option: the signal this process gets when the thread that created it ends.
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """A worker whose parent is killed (SIGKILL, the OOM killer) must not train on for nobody.

    Linux sends the worker SIGKILL when its parent ends. The parent may have ended before the request
    was made: then the worker's parent is no longer `parent`, and it ends at once. (The signal follows
    the parent *thread* that started the worker: encode_sequence starts its pool and stops it in the
    same thread.) Elsewhere the worker is left to the parent's own shutdown.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _init_worker(threads: int, progress_queue: Any, parent: int) -> None:
    """Each worker uses its share of the cores and dies with its parent; Ctrl-C is left to the parent,
    which stops the workers."""
    global _worker_progress
    _die_with_parent(parent)
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    _worker_progress = progress_queue


def _queue_reporter(progress_queue: Any, number: int) -> Callable[[Progress], None]:
    """Send training progress to the parent at most every 0.2 s, always the last iteration."""
    last = 0.0

    def report(progress: Progress) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= 0.2 or progress.iteration >= progress.total_iterations:
            last = now
            try:
                progress_queue.put_nowait(progress)
            except (queue.Full, OSError, ValueError):
                pass

    return report


def encode_one_frame(
    number: int, frame: Frame, lmbda: float, config: EncoderConfig, report: Callable[[Progress], None] | None = None
) -> tuple[bytes, FrameStats]:
    """Code one frame. Its quality and decode time are those of the encoder's final step, which decodes
    the frame's bytes with the real decoder (`EncodedFrame.reconstruction`), not of a training estimate.
    """
    from vcodec.encoder import encode_frame_report

    def on_progress(step: Any) -> None:
        if report is not None:
            report(Progress(number, step.iteration, step.total_iterations, step.loss, step.psnr_yuv, step.bpp))

    began = time.perf_counter()
    encoded = encode_frame_report(frame, lmbda, config, progress=on_progress)
    encode_seconds = time.perf_counter() - began
    stats = FrameStats(number, encoded.bits, encoded.bpp(), encoded.psnr,
                       encode_seconds, encoded.decode_seconds, encoded.arch_name)
    return encoded.data, stats


def _encode_in_worker(number: int, frame: Frame, lmbda: float, config: EncoderConfig) -> tuple[bytes, FrameStats]:
    report = _queue_reporter(_worker_progress, number) if _worker_progress is not None else None
    return encode_one_frame(number, frame, lmbda, config, report)


def threads_per_job(jobs: int, threads: int | None = None) -> int:
    """Torch threads for each of `jobs` parallel encodes: the cores shared out, at least one."""
    if threads is not None:
        if threads < 1:
            raise OptionError(f"--threads {threads} must be at least 1")
        return threads
    return max(1, (os.cpu_count() or 1) // jobs)


def _coded_frames(
    frames: Iterator[Frame],
    first: int,
    lmbda: float,
    config: EncoderConfig,
    jobs: int,
    threads: int,
    observer: EncodeObserver,
) -> Iterator[tuple[bytes, FrameStats]]:
    """Bitstream and statistics of each frame, in frame order, from this process or from `jobs` workers."""
    if jobs == 1:
        return _encode_serial(frames, first, lmbda, config, threads, observer)
    return _encode_parallel(frames, first, lmbda, config, jobs, threads, observer)


def _encode_serial(
    frames: Iterator[Frame], first: int, lmbda: float, config: EncoderConfig, threads: int, observer: EncodeObserver
) -> Iterator[tuple[bytes, FrameStats]]:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for number, frame in enumerate(frames, start=first):
            yield encode_one_frame(number, frame, lmbda, config, observer.iteration)
    finally:
        torch.set_num_threads(previous)


def _encode_parallel(
    frames: Iterator[Frame],
    first: int,
    lmbda: float,
    config: EncoderConfig,
    jobs: int,
    threads: int,
    observer: EncodeObserver,
) -> Iterator[tuple[bytes, FrameStats]]:
    """Frames go to `jobs` worker processes, at most 2 x jobs read ahead; results come back in order."""
    context = multiprocessing.get_context("spawn")
    progress_queue = context.Queue()
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                               initargs=(threads, progress_queue, os.getpid()))
    pending: dict[Future, int] = {}
    done: dict[int, tuple[bytes, FrameStats]] = {}
    next_to_yield = first
    numbered = enumerate(frames, start=first)
    exhausted = False
    finished_normally = False
    try:
        while True:
            # Workers start on the first submissions; they inherit a blocked SIGINT, so that a Ctrl-C
            # while one is still importing prints no traceback (the parent stops them all).
            with _sigint_blocked(len(pending) < jobs):
                while not exhausted and len(pending) < 2 * jobs:
                    item = next(numbered, None)
                    if item is None:
                        exhausted = True
                        break
                    pending[pool.submit(_encode_in_worker, item[0], item[1], lmbda, config)] = item[0]
            if not pending and next_to_yield not in done:
                break
            finished, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(progress_queue, observer)
            for future in finished:
                done[pending.pop(future)] = future.result()
            while next_to_yield in done:
                yield done.pop(next_to_yield)
                next_to_yield += 1
        finished_normally = True
    finally:
        _drain(progress_queue, observer)
        _shutdown(pool, finished_normally)
        progress_queue.close()


@contextmanager
def _sigint_blocked(active: bool) -> Iterator[None]:
    """Block (not ignore) SIGINT: one that arrives meanwhile is delivered on unblocking, never lost."""
    if not active:
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _shutdown(pool: ProcessPoolExecutor, graceful: bool) -> None:
    """Stop the workers; after an error or an interrupt, without waiting for frames under way.

    Python 3.11's executor has no public way to stop a running task, so its worker processes are
    terminated directly (Python 3.14 adds `terminate_workers` for this).
    """
    if graceful:
        pool.shutdown(wait=True)
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=5)


def _drain(progress_queue: Any, observer: EncodeObserver) -> None:
    while True:
        try:
            observer.iteration(progress_queue.get_nowait())
        except (queue.Empty, OSError, ValueError, EOFError):
            return


# --- the output file ---------------------------------------------------------------------------------


def _header_for(info: VideoInfo, record: dict[str, Any]) -> SequenceHeader:
    return SequenceHeader(info.width, info.height, info.bitdepth, info.fps, settings=record)


def _check_compatible(header: SequenceHeader, wanted: SequenceHeader, path: Path) -> None:
    """An interrupted encode is continued only with the same input format and the same settings."""
    mine = (header.width, header.height, header.bitdepth, header.fps)
    theirs = (wanted.width, wanted.height, wanted.bitdepth, wanted.fps)
    if mine != theirs:
        raise ResumeError(
            f"cannot resume {path}: it holds {header.width}x{header.height} {header.bitdepth}-bit {header.fps} fps, "
            f"the input is {wanted.width}x{wanted.height} {wanted.bitdepth}-bit {wanted.fps} fps"
        )
    for key in RESUME_KEYS:
        if header.settings.get(key) != wanted.settings.get(key):
            raise ResumeError(
                f"cannot resume {path}: it was coded with {key}={header.settings.get(key)!r}, "
                f"this run asks for {key}={wanted.settings.get(key)!r}"
            )
    coded, given = header.settings.get(SOURCE_DIGEST_KEY), wanted.settings.get(SOURCE_DIGEST_KEY)
    if coded is not None and coded != given:  # (files written before the digest was stored have none)
        raise ResumeError(
            f"cannot resume {path}: it was coded from another input (first frame sha256 {str(coded)[:16]}..., "
            f"this input's {str(given)[:16]}...)"
        )


def _open_output(
    target: Path, header: SequenceHeader, overwrite: bool, resume: bool, expected_frames: int | None
) -> ContainerWriter | EncodeSummary:
    """The writer to append to, or a summary when `--resume` finds the output already complete."""
    partial = partial_path(target)
    if resume and partial.exists():
        writer = ContainerWriter.append_to(partial)
        try:
            _check_compatible(writer.header, header, partial)
        except BaseException:
            writer.close()
            raise
        return writer
    if resume and target.exists() and not overwrite:
        with ContainerReader(target) as reader:
            _check_compatible(reader.header, header, target)
            if expected_frames is not None and reader.frame_count == expected_frames:
                info = VideoInfo(header.width, header.height, header.bitdepth, header.fps, reader.frame_count)
                size = sum(entry.length for entry in reader.entries)
                return EncodeSummary(target, info, reader.frame_count, size, reader.frame_count, already_complete=True)
        raise OutputExistsError(f"{target} already exists with {reader.frame_count} frames (use -y to overwrite)")
    _refuse_existing(target, overwrite)
    return ContainerWriter.create(partial, header)


def _refuse_existing(target: Path, overwrite: bool) -> None:
    """Without -y, neither the container nor an interrupted encode of it (`.partial`) is replaced."""
    check_overwrite(target, overwrite)
    partial = partial_path(target)
    if partial.exists() and not overwrite:
        raise OutputExistsError(
            f"{partial} holds an interrupted encode: add --resume to continue it, or -y to start over"
        )


class _CsvLog:
    """Per-frame statistics, one flushed row per frame; on resume, rows of earlier frames are kept."""

    def __init__(self, path: Path, keep_before: int) -> None:
        rows: list[list[str]] = []
        if keep_before and path.exists():
            with path.open(newline="") as handle:
                rows = [row for row in csv.reader(handle) if row and row[0].isdigit() and int(row[0]) < keep_before]
        self._handle = path.open("w", newline="")
        self._writer = csv.writer(self._handle, lineterminator="\n")
        self._writer.writerow(CSV_COLUMNS)
        self._writer.writerows(rows)
        self._handle.flush()

    def write(self, row: list[str]) -> None:
        self._writer.writerow(row)
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def encode_sequence(
    source: VideoSource,
    output: Path,
    settings: EncodeSettings,
    *,
    start: int = 0,
    jobs: int = 1,
    threads: int | None = None,
    overwrite: bool = False,
    resume: bool = False,
    csv_path: Path | None = None,
    observer: EncodeObserver | None = None,
) -> EncodeSummary:
    """Code every frame `source` yields into the container `output`.

    `start` is the source frame the selection began at (recorded, so that a resume reads the same
    frames). With `resume`, an interrupted `<output>.partial` is continued after its last complete
    frame. Raises OutputExistsError rather than replace a file without `overwrite`.
    """
    if jobs < 1:
        raise OptionError(f"--jobs {jobs} must be at least 1")
    if str(output) == STDIN:
        raise OptionError("the container must be written to a file (-o OUT.vcc): it is finished in place")
    if output.suffix.lower() != CONTAINER_SUFFIX:
        raise OptionError(f"{output}: the output of an encode is a {CONTAINER_SUFFIX} container (-o NAME.vcc)")
    check_frame_size(source.info.width, source.info.height, InputError, source.name)
    observer = observer or SilentObserver()
    if settings.device == "cuda":
        from vcodec.encoder.encode import check_device

        check_device(settings.device)
    if not resume:  # the container first: after an interrupted encode its CSV exists too; the hint is --resume
        _refuse_existing(output, overwrite)
        if csv_path is not None:
            check_overwrite(csv_path, overwrite)
    config = settings.encoder_config()
    began = time.perf_counter()
    frames = source.frames()
    first = next(frames, None)  # its digest identifies the input in the header
    if first is None:
        raise OptionError(f"{source.name}: no frames to encode")
    header = _header_for(source.info, settings.record(config, start, first))
    opened = _open_output(output, header, overwrite, resume, source.info.frame_count)
    if isinstance(opened, EncodeSummary):
        return opened
    writer = opened
    resumed = writer.frame_count
    # Frames a resume keeps are read past (the first one was needed for its digest anyway).
    remaining = itertools.islice(itertools.chain([first], frames), resumed, None)
    log = None
    summary = EncodeSummary(output, source.info, 0, 0, resumed)
    try:
        if csv_path is not None:
            log = _CsvLog(csv_path, resumed)
        observer.started(source.info.frame_count, resumed)
        per_job = threads_per_job(jobs, threads)
        for data, stats in _coded_frames(remaining, resumed, settings.lmbda, config, jobs, per_job, observer):
            # The CSV row first: a kill between the two leaves a row for a frame not in the container,
            # which a resume drops and writes again, never a kept frame without its row.
            if log is not None:
                log.write(stats.csv_row(settings.lmbda, settings.preset))
            writer.append(data)
            summary.coded.append(stats)
            observer.frame_done(stats)
        if not writer.frame_count:
            raise OptionError(f"{source.name}: no frames to encode")
        writer.finish()
    except BaseException:
        writer.close()
        if writer.frame_count == 0:
            writer.path.unlink(missing_ok=True)
        raise
    finally:
        if log is not None:
            log.close()
    writer.close()
    commit_partial(writer.path, output)
    summary.frames = writer.frame_count
    summary.total_bytes = sum(entry.length for entry in writer.entries)
    summary.info = VideoInfo(header.width, header.height, header.bitdepth, header.fps, writer.frame_count)
    summary.wall_seconds = time.perf_counter() - began
    return summary


# --- decoding, describing, comparing ----------------------------------------------------------------


def parse_frame_range(text: str | None, count: int) -> range:
    """`N` (the first N frames), `A:B` (frames A to B-1), `A:` or `:B`, within the `count` frames.

    A range that selects nothing or reaches past the last frame is refused, not clipped: a user who
    asked for frames that do not exist should be told, not given fewer.
    """
    if text is None or text.strip() in ("", ":"):
        return range(count)
    try:
        if ":" in text:
            first_text, last_text = text.split(":", 1)
            first = int(first_text) if first_text.strip() else 0
            stop = int(last_text) if last_text.strip() else count
        else:
            first, stop = 0, int(text)
    except ValueError:
        raise OptionError(f"invalid frame range {text!r}: expected N, A:B, A: or :B") from None
    if first < 0 or stop < first:
        raise OptionError(f"invalid frame range {text!r}")
    if first >= count:
        raise OptionError(f"frame range {text!r} starts after the last frame (the stream has {count} frames)")
    if stop == first:
        raise OptionError(f"frame range {text!r} is empty: nothing to decode")
    if stop > count:
        raise OptionError(f"frame range {text!r} ends after the last frame (the stream has {count} frames)")
    return range(first, stop)


def _read_stdin() -> BinaryIO:
    import io

    return io.BytesIO(sys.stdin.buffer.read())


def open_container(path: str) -> ContainerReader:
    """A container from a file, or read whole from stdin (`-`) so that it can be searched."""
    if path == STDIN:
        return ContainerReader(_read_stdin(), name="stdin")
    return ContainerReader(path)


def open_for_decoding(path: str) -> SalvageReader:
    """A container to decode, however damaged: its intact frames can be read (`-` reads stdin)."""
    if path == STDIN:
        return SalvageReader(_read_stdin(), name="stdin")
    return SalvageReader(path)


@dataclass(frozen=True)
class DecodeSummary:
    frames: int  # frames written
    seconds: float
    info: VideoInfo
    damaged: dict[int, str] = field(default_factory=dict)  # frames of the range not written: why
    problems: tuple[str, ...] = ()  # what is wrong with the container's structure


class DamagedStreamError(BitstreamError):
    """The container is damaged. Without --strict, the intact frames were written (`summary` says which)."""

    def __init__(self, message: str, summary: DecodeSummary | None = None) -> None:
        super().__init__(message)
        self.summary = summary


def _damage_text(damaged: dict[int, str]) -> str:
    """'frame 2 is damaged (CRC mismatch)', 'frames 1, 3 are damaged (1: missing; 3: CRC mismatch)'."""
    numbers = sorted(damaged)
    if len(numbers) == 1:
        return f"frame {numbers[0]} is damaged ({damaged[numbers[0]]})"
    reasons = set(damaged.values())
    why = reasons.pop() if len(reasons) == 1 else "; ".join(f"{n}: {damaged[n]}" for n in numbers)
    return f"frames {', '.join(map(str, numbers))} are damaged ({why})"


def _damage_message(name: str, problems: tuple[str, ...], damaged: dict[int, str]) -> str:
    parts = []
    if problems:
        parts.append(f"the container is damaged ({'; '.join(problems)})")
    if damaged:
        parts.append(_damage_text(damaged))
    return f"{name}: {', and '.join(parts)}"


def _decode_checked(reader: SalvageReader, number: int) -> Frame:
    """Frame `number`, decoded; DamagedFrame if it cannot be read or decodes to another size."""
    from vcodec.decoder import decode_frame

    data = reader.read_frame(number)
    try:
        frame = decode_frame(data)
    except BitstreamError as error:
        raise DamagedFrame(reader.name, number, f"its bitstream does not decode: {error}") from None
    header = reader.header
    if (frame.width, frame.height, frame.bitdepth) != (header.width, header.height, header.bitdepth):
        raise DamagedFrame(reader.name, number, f"it decodes to {frame.width}x{frame.height} "
                           f"{frame.bitdepth}-bit, the sequence header says {header.width}x{header.height} "
                           f"{header.bitdepth}-bit")
    return frame


def decode_sequence(
    reader: SalvageReader,
    output: str,
    frames: range,
    *,
    fmt: str | None = None,
    overwrite: bool = False,
    strict: bool = False,
    on_frame: Callable[[int], None] | None = None,
) -> DecodeSummary:
    """Decode `frames` of a container to planar YUV or y4m (`output` may be `-` for stdout).

    A damaged container still gives every intact frame of the range: damaged ones are skipped (the
    output holds the intact frames, in order), the output is finished, and DamagedStreamError names the
    damage. With `strict`, a damaged container writes nothing: its structure and the CRC of every frame
    of the range are checked before the output is opened (a frame that passes its CRC but does not
    decode can still stop a decode to stdout part way).
    """
    if not reader.frame_count:
        raise BitstreamError(f"{reader.name} holds no complete frame: nothing to decode")
    if not frames:
        raise OptionError("the frame range is empty: nothing to decode")
    problems = tuple(reader.problems)
    if strict:
        damaged = {}
        for number in frames:
            try:
                reader.read_frame(number)
            except DamagedFrame as error:
                damaged[number] = error.reason
        if problems or damaged:
            message = _damage_message(reader.name, problems, damaged)
            raise DamagedStreamError(f"{message}; nothing was written (--strict)")
    header = reader.header
    damaged = {}
    decode_seconds = 0.0
    info = VideoInfo(header.width, header.height, header.bitdepth, header.fps, len(frames))
    with open_video_writer(output, info, fmt, overwrite) as video:
        for number in frames:
            began = time.perf_counter()
            try:
                frame = _decode_checked(reader, number)
            except DamagedFrame as error:
                if strict:
                    raise DamagedStreamError(f"{error}; nothing was written (--strict)") from None
                damaged[number] = error.reason
                continue
            finally:
                decode_seconds += time.perf_counter() - began
            video.write(frame)
            if on_frame is not None:
                on_frame(number)
        written = len(frames) - len(damaged)
        if not written:  # (raised inside: nothing is left behind under the output's name)
            raise DamagedStreamError(f"{_damage_message(reader.name, problems, damaged)}: no intact frame to decode")
    summary = DecodeSummary(written, decode_seconds, info, damaged, problems)
    if damaged or problems:
        kept = (f"{output} holds the {written} intact frames of {len(frames)}" if damaged
                else f"all {written} frames are intact and were written to {output}")
        skipped = " and skipped" if damaged else ""
        raise DamagedStreamError(f"{_damage_message(reader.name, problems, damaged)}{skipped}: {kept}", summary)
    return summary


def describe_container(reader: ContainerReader) -> dict[str, Any]:
    """Everything `vcodec info` shows, as plain data (the JSON output is exactly this)."""
    from vcodec.bitstream.frame_info import read_frame_info

    header = reader.header
    pixels = header.width * header.height
    frames = [
        {"frame": e.number, "offset": e.offset, "bytes": e.length, "bpp": 8 * e.length / pixels,
         "arch": _frame_arch(reader, e.number)}
        for e in reader.entries
    ]
    total = sum(e.length for e in reader.entries)
    count = len(reader.entries)
    architecture: dict[str, Any] = {}
    if count:
        frame_info = read_frame_info(reader.read_frame(0))
        architecture = _plain(frame_info)
    return {
        "file": reader.name,
        "format_version": FORMAT_VERSION,
        "complete": reader.complete,
        "damaged_frames": [f["frame"] for f in frames if f["arch"] == DAMAGED],
        "file_bytes": reader.file_size,
        "trailing_bytes": reader.trailing_bytes,
        "sequence": {
            "width": header.width,
            "height": header.height,
            "bitdepth": header.bitdepth,
            "chroma_format": header.chroma_format,
            "pix_fmt": VideoInfo(header.width, header.height, header.bitdepth, header.fps).pix_fmt,
            "fps": f"{header.fps.numerator}/{header.fps.denominator}",
            "frame_count": count,
            "duration_seconds": count / float(header.fps),
        },
        "architecture": architecture,
        "settings": header.settings,
        "bitrate": {
            "bytes": total,
            "bpp": 8 * total / (count * pixels) if count else 0.0,
            "kbps": 8 * total / count * float(header.fps) / 1000 if count else 0.0,
        },
        "frames": frames,
    }


DAMAGED = "damaged"  # what `info` shows for a frame whose record or header does not check out


def _frame_arch(reader: ContainerReader, number: int) -> str:
    """The architecture a frame's header names (frames of one file may differ under --arch auto)."""
    from vcodec.bitstream.frame_header import parse_header
    from vcodec.types import BitstreamError

    try:
        return parse_header(reader.read_frame(number))[0].arch.name
    except BitstreamError:
        return DAMAGED


def _plain(value: Any) -> Any:
    """A dataclass (and what it holds) as JSON-friendly data."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    return value


def open_decoded(
    path: str,
    reference: VideoSource,
    *,
    size: tuple[int, int] | None = None,
    pix_fmt: str | None = None,
    bitdepth: int | None = None,
    frames: int | None = None,
) -> tuple[VideoSource, bool]:
    """The decoded video to compare with `reference`, and whether its size is only assumed.

    y4m and FFmpeg inputs describe themselves, and a raw file's name or the options may give its size;
    a raw input that says nothing of its size is read at the reference's (and its bit depth), which
    `compare_sequences` must then say when the videos do not match.
    """
    hints = infer_from_name(path if path != STDIN else "")
    assumed = size is None and (hints.width is None or hints.height is None)
    like = reference.info
    if assumed and path != STDIN and Path(path).suffix.lower() in RAW_SUFFIXES:
        depth = bitdepth_of_pix_fmt(pix_fmt) if pix_fmt else bitdepth or hints.bitdepth or like.bitdepth
        each = frame_bytes(like.width, like.height, depth)
        file_size = os.stat(path).st_size
        if file_size % each:
            raise OptionError(
                f"frame sizes differ: {path} is not {like.width}x{like.height} {depth}-bit like {reference.name} "
                f"({file_size} bytes are not a whole number of its {each}-byte frames); a raw file does not say "
                f"its size: give it in its name (e.g. clip_WxH.yuv) or compare a y4m"
            )
    source = open_video(path, size=size, pix_fmt=pix_fmt, bitdepth=bitdepth, frames=frames, like=like)
    return source, assumed and isinstance(source, RawReader)


def compare_sequences(reference: VideoSource, distorted: VideoSource, size_assumed: bool = False) -> list[FramePsnr]:
    """Per-frame PSNR of `distorted` against `reference`, frame by frame; both must have as many frames.

    `size_assumed`: `distorted` is raw and was read at the reference's size (open_decoded), so a frame
    count that differs may be a frame size that differs, and the message says so first.
    """
    a, b = reference.info, distorted.info
    if (a.width, a.height, a.bitdepth) != (b.width, b.height, b.bitdepth):
        raise OptionError(
            f"frame sizes differ: {reference.name} is {a.width}x{a.height} {a.bitdepth}-bit, "
            f"{distorted.name} is {b.width}x{b.height} {b.bitdepth}-bit"
        )

    def counts_differ(reference_count: int, distorted_count: int) -> OptionError:
        held = f"{distorted_count} frame{'s' if distorted_count != 1 else ''}"
        if size_assumed:
            return OptionError(
                f"frame sizes or frame counts differ: {distorted.name}, read at the size of {reference.name} "
                f"({a.width}x{a.height} {a.bitdepth}-bit; a raw file does not say its own), has {held}, "
                f"{reference.name} {reference_count}; if its frames are of another size, give it in its name "
                "(e.g. clip_WxH.yuv) or compare a y4m"
            )
        return OptionError(f"frame counts differ: {distorted.name} has {held}, {reference.name} {reference_count}")

    if a.frame_count is not None and b.frame_count is not None and a.frame_count != b.frame_count:
        raise counts_differ(a.frame_count, b.frame_count)
    results = []
    ref_frames, dist_frames = reference.frames(), distorted.frames()
    while True:
        ref, dist = next(ref_frames, None), next(dist_frames, None)
        if ref is None or dist is None:
            if ref is not dist:  # (a pipe: counted as it is read)
                more = sum(1 for _ in (dist_frames if ref is None else ref_frames)) + 1
                reference_count, distorted_count = (len(results), len(results) + more) if ref is None else (
                    len(results) + more, len(results))
                raise counts_differ(reference_count, distorted_count)
            return results
        results.append(frame_psnr(ref, dist))


def write_sample(
    path: str, width: int, height: int, frames: int, bitdepth: int, photo: str, fps: Fraction, overwrite: bool
) -> VideoInfo:
    """A short test clip from a scikit-image photo, raw or y4m by suffix (`-` for stdout)."""
    from vcodec.samples import sample_frames

    if frames < 1:
        raise OptionError(f"--frames {frames} must be positive")
    clip = sample_frames(width, height, frames, bitdepth, photo)
    info = VideoInfo(width, height, bitdepth, fps, frames)
    with open_video_writer(path, info, overwrite=overwrite) as writer:
        for frame in clip:
            writer.write(frame)
    return info


def mean_psnr(values: list[FramePsnr]) -> FramePsnr:
    """Average of per-frame PSNRs, plane by plane (as HM reports a sequence)."""
    n = len(values)
    return FramePsnr(*(sum(getattr(p, c) for p in values) / n for c in "yuv"))


__all__ = [
    "CSV_COLUMNS",
    "DamagedStreamError",
    "DecodeSummary",
    "EncodeObserver",
    "EncodeSettings",
    "EncodeSummary",
    "FrameStats",
    "Progress",
    "ResumeError",
    "SOURCE_DIGEST_KEY",
    "check_lambda",
    "compare_sequences",
    "decode_sequence",
    "describe_container",
    "encode_sequence",
    "open_container",
    "open_decoded",
    "open_for_decoding",
    "parse_frame_range",
    "resolve_lambda",
    "source_digest",
    "threads_per_job",
    "write_sample",
]
