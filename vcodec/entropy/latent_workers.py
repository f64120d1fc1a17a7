"""Decoding the latent substreams of a frame in several processes, one share of substreams each.

constriction holds the GIL while it decodes, so threads cannot run two range decoders at once: the
shares run in forked children (which inherit the parsed frame, so nothing is imported or sent to them,
and write their bands into grids in shared memory) and the parent decodes the first share itself.
Every substream decodes to the same values in whichever process and grouping, so the result never
depends on the number of workers. Where fork is missing, or a child fails for any reason but a corrupt
stream, its share is decoded in this process instead.
"""

from __future__ import annotations

import mmap
import os
import pickle

import numpy as np

from vcodec.entropy.fixed_point import IntegerArm
from vcodec.entropy.latent_coder import Canvas, decode_latents, place_bands
from vcodec.entropy.stage_times import StageTimes
from vcodec.entropy.substreams import Band
from vcodec.types import BitstreamError

# Below this many coded positions a fork (tens of milliseconds with torch loaded) costs more than it saves.
PARALLEL_MIN_POSITIONS = 200_000
# The ARM's thread ahead keeps every position's Laplace and symbol (18 bytes): beyond a 1080p frame's
# positions a one-process decode runs in one thread rather than hold more.
AHEAD_MAX_POSITIONS = 1 << 22


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def coded_positions(bands_by_stream: tuple[tuple[Band, ...], ...]) -> int:
    return sum(band.positions for stream in bands_by_stream for band in stream)


def default_workers(bands_by_stream: tuple[tuple[Band, ...], ...]) -> int:
    if coded_positions(bands_by_stream) < PARALLEL_MIN_POSITIONS or not hasattr(os, "fork"):
        return 1
    return max(1, min(len(bands_by_stream), usable_cores()))


def decode_grids(streams: list[bytes], arm: IntegerArm, sizes: list[tuple[int, int]],
                 bands_by_stream: tuple[tuple[Band, ...], ...], context_offsets: list[tuple[int, int]],
                 workers: int | None = None, times: StageTimes | None = None, table_model: bool = True
                 ) -> list[np.ndarray]:
    """Every latent grid (int32; zeros where not coded) from the frame's substreams.

    workers: processes decoding at once (None: one per substream, up to the usable cores, for frames
    big enough to gain). times: the split of this process's share (plus the wait for the others).
    table_model: frame format 7 on (vcodec.entropy.latent_coder.decode_latents)."""
    times = times or StageTimes()
    count = len(bands_by_stream)
    if len(streams) != count:
        raise BitstreamError(f"{len(streams)} latent substreams given, the frame has {count}")
    workers = default_workers(bands_by_stream) if workers is None else max(1, min(workers, count))
    if not hasattr(os, "fork"):
        workers = 1
    shares = [list(range(count * w // workers, count * (w + 1) // workers)) for w in range(workers)]
    grids = _shared_grids(sizes) if workers > 1 else [np.zeros(size, dtype=np.int32) for size in sizes]

    # Formats 1-6 in one process on a machine with a core to spare: the ARM runs a thread ahead of the range
    # decoder (0.79-0.89x the time). Format 7's table model decodes 3x faster, so the range decoder mostly
    # waits for the thread: 0.85-1.03x on an idle machine, 1.6-1.9x beside two busy processes (in turn,
    # docs/results/table-model-2026-12-08.md); it decodes in one thread.
    ahead = (not table_model and workers == 1 and usable_cores() >= 2
             and coded_positions(bands_by_stream) <= AHEAD_MAX_POSITIONS)

    def decode_share(share: list[int], share_times: StageTimes | None) -> None:
        """Decode the share's substreams into `grids` (memory shared with the parent when in a child)."""
        canvas = Canvas.for_streams(sizes, tuple(bands_by_stream[s] for s in share), context_offsets)
        place_bands(grids, canvas.bands,
                    decode_latents([streams[s] for s in share], arm, canvas, share_times, ahead, table_model))

    children = [(*_fork_share(lambda share=share: decode_share(share, None)), share) for share in shares[1:]]
    try:
        decode_share(shares[0], times)
        while children:
            pid, reader, share = children.pop(0)
            outcome = _collect(pid, reader)
            if outcome[0] == "error":
                raise BitstreamError(outcome[1])
            if outcome[0] != "ok":  # the child died or failed otherwise: decode its share here
                decode_share(share, None)
        times.lap("waiting for workers")
    finally:
        for pid, reader, _ in children:  # interrupted or failed: let the other children go
            os.close(reader)
            os.waitpid(pid, 0)
    return grids


def _shared_grids(sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """Zeroed int32 grids in one anonymous shared mapping: forked workers write their bands straight into
    the parent's grids (nothing pickled, piped or copied back)."""
    total = sum(height * width for height, width in sizes)
    memory = mmap.mmap(-1, max(4 * total, 1))
    grids, offset = [], 0
    for height, width in sizes:
        grids.append(np.frombuffer(memory, dtype=np.int32, count=height * width, offset=4 * offset).reshape(height, width))
        offset += height * width
    return grids


def _fork_share(work) -> tuple[int, int]:
    """Run work() in a forked child; returns its pid and the read end of the pipe its pickled outcome
    ("ok", None), ("error", message) for a corrupt stream, or ("failed", why) comes through."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code
        status = 0
        try:
            os.close(reader)
            try:
                work()
                outcome = ("ok", None)
            except BitstreamError as error:
                outcome = ("error", str(error))
            except BaseException as error:  # noqa: BLE001 - reported to the parent, which redoes the share
                outcome = ("failed", repr(error))
            with os.fdopen(writer, "wb") as pipe:
                pipe.write(pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL))
        except BaseException:  # noqa: BLE001 - the parent sees a short read and redoes the share
            status = 1
        finally:
            os._exit(status)
    os.close(writer)
    return pid, reader


def _collect(pid: int, reader: int) -> tuple:
    with os.fdopen(reader, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    try:
        return pickle.loads(data)
    except Exception:  # noqa: BLE001 - a child that died mid-write
        return ("failed", "no result")
