"""Running evaluation jobs: each (sequence, codec, rate point) is independent.

Two executors: local worker processes (spawned, nothing to start; the default) and a Dask distributed
cluster (`scheduler="tcp://host:8786"`), where jobs of a GPU codec ask for the resource `GPU: 1`.
Either way the scheduling process writes each result to the store as soon as it arrives, skips jobs
already stored, retries a failed job once, and reports a job that fails twice without stopping the others.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context

from tqdm import tqdm

from vcodec.eval.codecs import Codec
from vcodec.eval.errors import EvalError
from vcodec.eval.results import PointResult
from vcodec.eval.sequences import Sequence
from vcodec.eval.store import ResultStore, canonical_hash

MAX_ATTEMPTS = 2


@dataclass(frozen=True)
class Job:
    sequence: Sequence
    codec: Codec
    rate_point: str
    first_frame: int
    frames: int
    key: str
    settings_hash: str

    @property
    def label(self) -> str:
        return f"{self.sequence.name} / {self.codec.name} @ {self.rate_point}"


def make_job(sequence: Sequence, codec: Codec, rate_point: str, first_frame: int, frames: int) -> Job:
    settings_hash = canonical_hash(codec.settings())
    key = canonical_hash({
        "sequence": sequence.identity(),
        "first_frame": first_frame,
        "frames": frames,
        "rate_point": rate_point,
        "codec": codec.name,
        "codec_version": codec.version(),
        "settings": settings_hash,
        "inputs": codec.job_fingerprint(sequence, rate_point),
    })
    return Job(sequence, codec, rate_point, first_frame, frames, key, settings_hash)


def run_job(job: Job) -> tuple[PointResult, float]:
    """What a worker runs; returns the result and the job's wall time."""
    start = time.perf_counter()
    result = job.codec.code(job.sequence, job.first_frame, job.frames, job.rate_point)
    return result, time.perf_counter() - start


def _limit_threads(threads: int) -> None:
    """Share the machine's cores between worker processes instead of each one taking them all.

    OpenMP threads that spin while they wait make training several times slower as soon as other
    processes share the cores, so waiting is passive unless the environment says otherwise.
    """
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


@dataclass
class RunSummary:
    total: int
    skipped: int = 0
    computed: int = 0
    failed: list[tuple[Job, str]] = field(default_factory=list)
    seconds: float = 0.0


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


class _Tracker:
    """Records outcomes in the store and the summary, and decides on retries."""

    def __init__(self, store: ResultStore, summary: RunSummary, bar: tqdm) -> None:
        self.store = store
        self.summary = summary
        self.bar = bar

    def done(self, job: Job, result: PointResult, seconds: float) -> None:
        self.store.put(job.key, job.settings_hash, job.first_frame, result, seconds)
        self.summary.computed += 1
        self.bar.update(1)

    def failed(self, job: Job, attempt: int, error: BaseException) -> bool:
        """True if the job should be tried again."""
        if attempt < MAX_ATTEMPTS:
            self.bar.write(f"job {job.label} failed ({_one_line(error)}); retrying", file=sys.stderr)
            return True
        detail = "".join(traceback.format_exception(error))
        self.store.record_failure(job.key, job.label, attempt, detail)
        self.summary.failed.append((job, _one_line(error)))
        self.bar.write(f"job {job.label} failed twice: {_one_line(error)}", file=sys.stderr)
        self.bar.update(1)
        return False


def _run_in_process(jobs: list[Job], tracker: _Tracker) -> None:
    for job in jobs:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                result, seconds = run_job(job)
            except Exception as error:  # noqa: BLE001 - a failing job must not stop the others
                if tracker.failed(job, attempt, error):
                    continue
                break
            tracker.done(job, result, seconds)
            break


def _run_local(jobs: list[Job], tracker: _Tracker, workers: int, threads: int | None) -> None:
    threads = threads or max(1, (os.cpu_count() or 1) // workers)

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_limit_threads,
                                   initargs=(threads,))

    queue: list[tuple[Job, int]] = [(job, 1) for job in jobs]
    queue.reverse()
    pool = new_pool()
    running: dict[Future[tuple[PointResult, float]], tuple[Job, int]] = {}
    try:
        while queue or running:
            while queue and len(running) < 2 * workers:
                job, attempt = queue.pop()
                running[pool.submit(run_job, job)] = (job, attempt)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = False
            for future in finished:
                job, attempt = running.pop(future)
                error = future.exception()
                if error is None:
                    tracker.done(job, *future.result())
                    continue
                broken = broken or isinstance(error, BrokenProcessPool)
                if tracker.failed(job, attempt, error):
                    queue.append((job, attempt + 1))
            if broken:
                # A worker died (killed, out of memory): every job it shared the pool with is lost too.
                for future, (job, attempt) in running.items():
                    if tracker.failed(job, attempt, BrokenProcessPool("a worker process died")):
                        queue.append((job, attempt + 1))
                running.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = new_pool()
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM): stop the workers now rather than wait for their jobs; finished
        # jobs are already stored.
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _run_dask(jobs: list[Job], tracker: _Tracker, scheduler: str) -> None:
    from distributed import Client, as_completed

    try:
        client = Client(scheduler, timeout="30s")
    except (OSError, TimeoutError) as err:
        raise EvalError(f"cannot reach the Dask scheduler at {scheduler}: {err}") from None
    try:
        def submit(job: Job, attempt: int) -> object:
            resources = {"GPU": 1} if job.codec.uses_gpu else None
            return client.submit(run_job, job, key=f"vcodec-eval-{job.key[:32]}-{attempt}", pure=False,
                                 resources=resources)

        attempts = {}
        for job in jobs:
            attempts[submit(job, 1)] = (job, 1)
        pending = as_completed(list(attempts))
        for future in pending:
            job, attempt = attempts.pop(future)
            if future.status == "error":
                error = future.exception()
                if tracker.failed(job, attempt, error):
                    retry = submit(job, attempt + 1)
                    attempts[retry] = (job, attempt + 1)
                    pending.add(retry)
            else:
                tracker.done(job, *future.result())
            future.release()
    finally:
        client.close()


def default_workers(jobs: Iterable[Job]) -> int:
    """One process per core for CPU jobs; a single process when a job needs the GPU."""
    jobs = list(jobs)
    if any(job.codec.uses_gpu for job in jobs):
        return 1
    return max(1, min(len(jobs), os.cpu_count() or 1))


def run_jobs(
    jobs: list[Job],
    store: ResultStore,
    *,
    workers: int | None = None,
    threads: int | None = None,
    scheduler: str | None = None,
    quiet: bool = False,
    on_start: Callable[[int, int], None] | None = None,
) -> RunSummary:
    """Run every job whose result is not stored yet. `workers=0` runs them in this process, one by one.

    `threads` is the number of compute threads of each local worker (default: the cores shared out
    between the workers); on a machine other work keeps busy, 1 is much faster than more.
    """
    started = time.perf_counter()
    pending = [job for job in jobs if not store.has(job.key)]
    summary = RunSummary(total=len(jobs), skipped=len(jobs) - len(pending))
    if on_start is not None:
        on_start(len(jobs), summary.skipped)
    with tqdm(total=len(jobs), initial=summary.skipped, desc="eval jobs", unit="job", file=sys.stderr,
              disable=quiet, dynamic_ncols=True) as bar:
        tracker = _Tracker(store, summary, bar)
        if pending:
            if scheduler:
                _run_dask(pending, tracker, scheduler)
            elif workers == 0:
                _run_in_process(pending, tracker)
            else:
                _run_local(pending, tracker, workers or default_workers(pending), threads)
    summary.seconds = time.perf_counter() - started
    return summary
