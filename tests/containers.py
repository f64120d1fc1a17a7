"""Writing small .vcc containers for the container and salvage tests, in the current or an old version."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from vcodec.bitstream.container import (
    FORMAT_VERSION,
    ContainerWriter,
    IndexEntry,
    SequenceHeader,
    pack_file_header,
    pack_frame_record,
    pack_index,
)


def write_container(path: Path, header: SequenceHeader, payloads: list[bytes], finish: bool = True,
                    version: int = FORMAT_VERSION) -> None:
    """The container of `payloads`, finished (index, frame count) or left as an interrupted encode leaves it.
    Version 1 is laid out from its packers, as vcodec 0.1 wrote it: header, records, then index and footer."""
    if version == FORMAT_VERSION:
        writer = ContainerWriter.create(path, header)
        for payload in payloads:
            writer.append(payload)
        if finish:
            writer.finish()
        writer.close()
        return
    count = len(payloads) if finish else 0
    data = bytearray(pack_file_header(replace(header, frame_count=count), version))
    entries = []
    for number, payload in enumerate(payloads):
        record = pack_frame_record(number, payload, version)
        entries.append(IndexEntry(number, len(data), len(payload), len(record) - len(payload)))
        data += record
    if finish:
        data += pack_index(entries, len(data))
    path.write_bytes(bytes(data))
