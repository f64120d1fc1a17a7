"""Writing small .vcc containers for the container and salvage tests."""

from __future__ import annotations

from pathlib import Path

from vcodec.bitstream.container import ContainerWriter, SequenceHeader


def write_container(path: Path, header: SequenceHeader, payloads: list[bytes], finish: bool = True) -> None:
    """The container of `payloads`, finished (index, frame count) or left as an interrupted encode leaves it."""
    writer = ContainerWriter.create(path, header)
    for payload in payloads:
        writer.append(payload)
    if finish:
        writer.finish()
    writer.close()
