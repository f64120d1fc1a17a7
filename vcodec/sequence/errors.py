"""Errors of the sequence commands that the command line maps to exit codes without loading the encoder."""

from __future__ import annotations

from vcodec.types import VcodecError


class ResumeError(VcodecError):
    """An interrupted encode cannot be continued with the options given (different settings or input)."""
