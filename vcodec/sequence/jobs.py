"""Coding the frames of a sequence, in this process or in `--jobs` worker processes, in frame order.

Frames decode independently, so several can train at once. With warm start (the preset's `warm_start`)
frames are coded in chains of `warm_chain` frames, each frame after a chain's first starting from the
float model of the frame before it; chains begin at frame numbers that are multiples of `warm_chain`,
whatever `--jobs`, so the bytes do not depend on how many jobs code them. A worker takes a whole chain
and codes it in order. Workers are spawned processes: what they run
(`_init_worker`, `_encode_chain_in_worker`) must stay top-level functions of this module, and what they
return or report (FrameStats, Progress) plain picklable dataclasses. A worker dies with its parent,
ignores Ctrl-C (the parent stops them all) and sends its training progress through a queue that the
parent drains into the observer.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import queue
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Any

from vcodec.config import EncoderConfig
from vcodec.io import OptionError
from vcodec.sequence.reports import EncodeObserver, FrameStats, Progress
from vcodec.types import Frame, RateTarget

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


def _queue_reporter(progress_queue: Any) -> Callable[[Progress], None]:
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


def chain_length(config: EncoderConfig, lmbda: float | RateTarget | None = None) -> int:
    """Frames per warm-start chain: 1 (every frame alone) when warm start is off, and for a rate target
    (rate control codes every frame cold)."""
    if isinstance(lmbda, RateTarget):
        return 1
    return 1 if config.preset.warm_start == "off" else config.preset.warm_chain


def chain_start(number: int, config: EncoderConfig) -> int:
    """The first frame of the warm-start chain that frame `number` belongs to."""
    return number - number % chain_length(config)


def encode_frames(
    numbered: Iterable[tuple[int, Frame]], lmbda: float | RateTarget, config: EncoderConfig,
    report: Callable[[Progress], None] | None = None,
) -> Iterator[tuple[bytes, FrameStats]]:
    """Code frames in order, at a lambda or, by rate control, at the lambda that meets a RateTarget.
    At a lambda, each frame is warm-started from the one before it where both are of one chain
    (consecutive numbers, not crossing a multiple of the chain length); others start cold. With a
    RateTarget every frame starts cold (rate control probes and continues its own training).

    Each frame's quality and decode time are those of the encoder's final step, which decodes the frame's
    bytes with the real decoder (`EncodedFrame.reconstruction`), not of a training estimate."""
    from vcodec.encoder.encode import encode_frame_chained

    chain = chain_length(config, lmbda)
    previous: Any = None  # the float model of the frame before, while the chain goes on
    last = None
    for number, frame in numbered:
        if chain == 1 or number % chain == 0 or last != number - 1:
            previous = None

        def on_progress(step: Any, number: int = number) -> None:
            if report is not None:
                report(Progress(number, step.iteration, step.total_iterations, step.loss, step.psnr_yuv, step.bpp))

        began = time.perf_counter()
        if isinstance(lmbda, RateTarget):
            from vcodec.encoder.rate_control import encode_to_target

            result = encode_to_target(frame, lmbda, config, progress=on_progress)
            encoded, control = result.encoded, (result.lmbda, lmbda, result.probes, result.within)
        else:
            encoded, trained = encode_frame_chained(frame, lmbda, config, previous, progress=on_progress)
            previous = trained if chain > 1 else None
            control = (lmbda, None, 0, None)
        last = number
        encode_seconds = time.perf_counter() - began
        yield encoded.data, FrameStats(number, encoded.bits, encoded.bpp(), encoded.psnr,
                                       encode_seconds, encoded.decode_seconds, encoded.arch_name, *control)


def _encode_chain_in_worker(numbered: list[tuple[int, Frame]], lmbda: float | RateTarget,
                            config: EncoderConfig) -> list[tuple[bytes, FrameStats]]:
    report = _queue_reporter(_worker_progress) if _worker_progress is not None else None
    return list(encode_frames(numbered, lmbda, config, report))


# --- all the frames, serially or in parallel ------------------------------------------------------


def threads_per_job(jobs: int, threads: int | None = None) -> int:
    """Torch threads for each of `jobs` parallel encodes: the cores shared out, at least one."""
    if threads is not None:
        if threads < 1:
            raise OptionError(f"--threads {threads} must be at least 1")
        return threads
    return max(1, (os.cpu_count() or 1) // jobs)


def coded_frames(
    frames: Iterator[Frame],
    first: int,
    lmbda: float | RateTarget,
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
    frames: Iterator[Frame], first: int, lmbda: float | RateTarget, config: EncoderConfig, threads: int, observer: EncodeObserver
) -> Iterator[tuple[bytes, FrameStats]]:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield from encode_frames(enumerate(frames, start=first), lmbda, config, observer.iteration)
    finally:
        torch.set_num_threads(previous)


def _encode_parallel(
    frames: Iterator[Frame],
    first: int,
    lmbda: float | RateTarget,
    config: EncoderConfig,
    jobs: int,
    threads: int,
    observer: EncodeObserver,
) -> Iterator[tuple[bytes, FrameStats]]:
    """Frames go to `jobs` worker processes, at most 2 x jobs read ahead (with warm start, whole chains,
    at most jobs + 1 of them); results come back in frame order."""
    context = multiprocessing.get_context("spawn")
    progress_queue = context.Queue()
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                               initargs=(threads, progress_queue, os.getpid()))
    pending: dict[Future, int] = {}
    done: dict[int, tuple[bytes, FrameStats]] = {}
    next_to_yield = first
    length = chain_length(config, lmbda)
    chains = _chains(enumerate(frames, start=first), length)
    ahead = 2 * jobs if length == 1 else jobs + 1  # chains in flight or read ahead (a chain holds its frames)
    exhausted = False
    finished_normally = False
    try:
        while True:
            # Workers start on the first submissions; they inherit a blocked SIGINT, so that a Ctrl-C
            # while one is still importing prints no traceback (the parent stops them all).
            with _sigint_blocked(len(pending) < jobs):
                while not exhausted and len(pending) < ahead:
                    chain = next(chains, None)
                    if chain is None:
                        exhausted = True
                        break
                    pending[pool.submit(_encode_chain_in_worker, chain, lmbda, config)] = chain[0][0]
            if not pending and next_to_yield not in done:
                break
            finished, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(progress_queue, observer)
            for future in finished:
                pending.pop(future)
                for data, stats in future.result():
                    done[stats.number] = (data, stats)
            while next_to_yield in done:
                yield done.pop(next_to_yield)
                next_to_yield += 1
        finished_normally = True
    finally:
        _drain(progress_queue, observer)
        _shutdown(pool, finished_normally)
        progress_queue.close()


def _chains(numbered: Iterator[tuple[int, Frame]], length: int) -> Iterator[list[tuple[int, Frame]]]:
    """Consecutive frames grouped by chain (frame number // length), read one chain at a time."""
    chain: list[tuple[int, Frame]] = []
    for number, frame in numbered:
        if chain and number // length != chain[0][0] // length:
            yield chain
            chain = []
        chain.append((number, frame))
    if chain:
        yield chain


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
    """Hand the workers' progress so far to the observer, in the parent, without waiting for more."""
    while True:
        try:
            observer.iteration(progress_queue.get_nowait())
        except (queue.Empty, OSError, ValueError, EOFError):
            return
