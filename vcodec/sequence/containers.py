"""Opening a `.vcc` container to read: strictly (`vcodec info`) or however damaged (`vcodec decode`).

Either reads from a file or, for `-`, reads stdin whole: a container is searched from its end (its
frame index), which a pipe cannot do.
"""

from __future__ import annotations

import io
import sys
from typing import BinaryIO

from vcodec.bitstream.container import ContainerReader
from vcodec.bitstream.salvage import SalvageReader
from vcodec.io import STDIN


def _read_stdin() -> BinaryIO:
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
