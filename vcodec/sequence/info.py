"""`vcodec info`: everything about a container, as plain data (its JSON output is exactly this).

It reads headers only, never decodes a frame: no torch and no decoder are imported, so that `info`
answers at once (tests/test_startup.py). Frame headers are read with vcodec.bitstream's torch-free
parsers, and a frame whose record or header does not check out is shown as DAMAGED, not fatal.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from fractions import Fraction
from typing import Any

from vcodec.bitstream.container import FORMAT_VERSION, ContainerReader
from vcodec.io import VideoInfo
from vcodec.types import BitstreamError

DAMAGED = "damaged"  # what `info` shows for a frame whose record or header does not check out


def describe_container(reader: ContainerReader) -> dict[str, Any]:
    """Everything `vcodec info` shows, as plain data (the JSON output is exactly this)."""
    from vcodec.bitstream.frame_info import read_frame_info

    header = reader.header
    pixels = header.width * header.height
    frames = [
        {"frame": e.number, "offset": e.offset, "bytes": e.length, "bpp": 8 * e.length / pixels,
         "arch": _frame_arch(reader, e.number)}
        for e in reader.entries
    ]
    total = sum(e.length for e in reader.entries)
    count = len(reader.entries)
    architecture: dict[str, Any] = {}
    if count:
        frame_info = read_frame_info(reader.read_frame(0))
        architecture = _plain(frame_info)
    return {
        "file": reader.name,
        "format_version": FORMAT_VERSION,
        "complete": reader.complete,
        "damaged_frames": [f["frame"] for f in frames if f["arch"] == DAMAGED],
        "file_bytes": reader.file_size,
        "trailing_bytes": reader.trailing_bytes,
        "sequence": {
            "width": header.width,
            "height": header.height,
            "bitdepth": header.bitdepth,
            "chroma_format": header.chroma_format,
            "pix_fmt": VideoInfo(header.width, header.height, header.bitdepth, header.fps).pix_fmt,
            "fps": f"{header.fps.numerator}/{header.fps.denominator}",
            "frame_count": count,
            "duration_seconds": count / float(header.fps),
        },
        "architecture": architecture,
        "settings": header.settings,
        "bitrate": {
            "bytes": total,
            "bpp": 8 * total / (count * pixels) if count else 0.0,
            "kbps": 8 * total / count * float(header.fps) / 1000 if count else 0.0,
        },
        "frames": frames,
    }


def _frame_arch(reader: ContainerReader, number: int) -> str:
    """The architecture a frame's header names (frames of one file may differ under --arch auto)."""
    from vcodec.bitstream.frame_header import parse_header

    try:
        return parse_header(reader.read_frame(number))[0].arch.name
    except BitstreamError:
        return DAMAGED


def _plain(value: Any) -> Any:
    """A dataclass (and what it holds) as JSON-friendly data."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    return value
