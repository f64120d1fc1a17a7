"""The persistent results store: one SQLite file, one row per finished job, written the moment it finishes.

A job is keyed by what determines its result: the sequence (name, size, bit depth, file size), the
frame range, the rate point, and the codec's name, version, settings hash and (for imported anchors)
the digest of the files it reads. Rerunning an evaluation skips every key already present, so a killed
run loses only the jobs that were in flight, and anchors are coded once for every later comparison.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from vcodec.eval.errors import EvalError
from vcodec.eval.results import PointResult

STORE_NAME = "results.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    sequence TEXT NOT NULL,
    codec TEXT NOT NULL,
    codec_version TEXT NOT NULL,
    settings_hash TEXT NOT NULL,
    rate_point TEXT NOT NULL,
    first_frame INTEGER NOT NULL,
    frames INTEGER NOT NULL,
    result TEXT NOT NULL,
    job_seconds REAL NOT NULL,
    finished_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS failures (
    key TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT NOT NULL,
    failed_at REAL NOT NULL
);
"""


def canonical_hash(value: object) -> str:
    """SHA-256 of a JSON value with sorted keys: the same settings always hash the same."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class StoredResult:
    result: PointResult
    job_seconds: float
    finished_at: float


@dataclass(frozen=True)
class Failure:
    key: str
    label: str
    attempts: int
    error: str


class ResultStore:
    """Opened by the process that schedules jobs; workers never write to it (they may be on other machines)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=60.0)
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            raise EvalError(f"results store {self.path} cannot be opened: {err}") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, key: str) -> StoredResult | None:
        row = self._db.execute(
            "SELECT result, job_seconds, finished_at FROM results WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        return StoredResult(PointResult.from_json(row[0]), float(row[1]), float(row[2]))

    def has(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM results WHERE key = ?", (key,)).fetchone() is not None

    def put(self, key: str, settings_hash: str, first_frame: int, result: PointResult, job_seconds: float) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, result.sequence, result.codec, result.codec_version, settings_hash, result.rate_point,
                 first_frame, len(result.frames), result.to_json(), job_seconds, time.time()),
            )
            self._db.execute("DELETE FROM failures WHERE key = ?", (key,))

    def record_failure(self, key: str, label: str, attempts: int, error: str) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?)", (key, label, attempts, error, time.time())
            )

    def failures(self) -> list[Failure]:
        rows = self._db.execute("SELECT key, label, attempts, error FROM failures ORDER BY failed_at").fetchall()
        return [Failure(*row) for row in rows]

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])
