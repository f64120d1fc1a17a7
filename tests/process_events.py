"""Waiting in tests for what another process does: woken by events, bounded by a deadline, never by sleeps.

A test that kills an encode once its first frame is on disk must not guess how long training takes, nor
poll: `wait_until` watches the folder the other process writes into (inotify, Linux) and checks its
condition again whenever a file there is created, written or renamed, and gives up at once when the
process exits (its pidfd becomes readable) or when the deadline passes. `wait_for_exit` waits on the
pidfds of processes that are not this one's children (orphaned workers, say), which `worker_processes`
finds in /proc.
"""

from __future__ import annotations

import ctypes
import os
import select
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

# <sys/inotify.h>
_IN_MODIFY = 0x002
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_WRITES = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE


class FolderWatch:
    """An inotify descriptor that becomes readable when a file in `folder` is created, written or renamed."""

    def __init__(self, folder: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        if libc.inotify_add_watch(self._fd, os.fsencode(folder), _WRITES) < 0:
            error = ctypes.get_errno()
            os.close(self._fd)
            raise OSError(error, f"cannot watch {folder}")

    def fileno(self) -> int:
        return self._fd

    def drain(self) -> None:
        """Forget the events received so far (the condition is checked afresh anyway)."""
        try:
            while os.read(self._fd, 1 << 16):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> FolderWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_until(condition: Callable[[], bool], folder: Path, process: subprocess.Popen, timeout: float,
               what: str) -> None:
    """Return once `condition()` holds, checking it whenever a file in `folder` changes. Fails when
    `process` ends first (it would never come true) or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    exited = os.pidfd_open(process.pid)
    try:
        with FolderWatch(folder) as watch:  # watching before the first check: no change can slip between
            while not condition():
                if process.poll() is not None:
                    raise AssertionError(f"the process ended (exit {process.returncode}) before {what}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"not {what} within {timeout} s")
                select.select([watch, exited], [], [], remaining)
                watch.drain()
    finally:
        os.close(exited)


def wait_for_exit(pids: list[int], timeout: float) -> list[int]:
    """Wait until every process in `pids` has ended, or `timeout` seconds; returns those still running."""
    deadline = time.monotonic() + timeout
    descriptors: dict[int, int] = {}
    for pid in pids:
        try:
            descriptors[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            pass  # already gone
    try:
        running = dict(descriptors)
        while running:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select(list(running), [], [], remaining)
            for fd in ready:
                del running[fd]
        return sorted(running.values())
    finally:
        for fd in descriptors:
            os.close(fd)


def worker_processes(parent: int) -> list[int]:
    """The multiprocessing workers (`spawn_main` in their command line) whose parent is `parent`, from /proc."""
    workers = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:  # ended meanwhile
            continue
        parent_pid = int(stat[stat.rindex(")") + 2 :].split()[1])  # after "pid (name) state"
        if parent_pid == parent and b"spawn_main" in command:
            workers.append(int(entry.name))
    return sorted(workers)
