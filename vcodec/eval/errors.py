"""Errors of the evaluation verbs (`vcodec eval`, `bdrate`, `plot`); each is a one-line `VcodecError`."""

from __future__ import annotations

from vcodec.types import VcodecError


class EvalError(VcodecError):
    """An evaluation cannot start or finish: bad options, unreadable result tables, a broken store."""


class SequencesNotFoundError(EvalError):
    """Test sequences of the requested classes are missing; the message lists every one of them."""


class AnchorError(EvalError):
    """An anchor (x265, HM logs, HM bitstreams, a CSV table) is missing data or cannot be read."""


class JobsFailedError(EvalError):
    """Some jobs failed twice; the others finished and their results were written."""
