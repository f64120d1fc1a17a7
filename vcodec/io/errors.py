"""Errors a user causes through the files and options given to the command line.

Each class is a `VcodecError`, so the CLI prints it on one line; each maps to its own exit code
(see `vcodec.cli.ExitCode`).
"""

from __future__ import annotations

from vcodec.types import VcodecError


class OptionError(VcodecError):
    """An option is missing, malformed or contradicts another (for example raw input without a size)."""


class InputError(VcodecError):
    """An input video cannot be read as YUV 4:2:0: wrong byte size, odd dimensions, unsupported format."""


class OutputExistsError(VcodecError):
    """An output file already exists and overwriting was not asked for (`-y`)."""
