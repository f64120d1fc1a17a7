"""`vcodec info`: everything about a container, as plain data (its JSON output is exactly this).

It reads headers only, never decodes a frame: no torch and no decoder are imported, so that `info`
answers at once (tests/test_startup.py). Frame headers are read with vcodec.bitstream's torch-free
parsers, and a frame whose record or header does not check out is shown as DAMAGED, not fatal.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from fractions import Fraction
from typing import Any

from vcodec.bitstream.container import ContainerReader
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
         **_frame_header(reader, e.number)}
        for e in reader.entries
    ]
    total = reader.payload_bytes
    count = len(reader.entries)
    architecture: dict[str, Any] = {}
    if count:
        frame_info = read_frame_info(reader.read_frame(0))
        architecture = _plain(frame_info)
    return {
        "file": reader.name,
        "format_version": reader.version,
        "complete": reader.complete,
        "damaged_frames": [f["frame"] for f in frames if f["arch"] == DAMAGED],
        "file_bytes": reader.file_size,
        # Bytes of the file that are not frame bitstreams: its header, record headers, index and footer
        # (and the bytes of a cut-short frame); each frame's own header is its `header_bytes`.
        "container_bytes": reader.file_size - total,
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
        # How the frames were made from an RGB picture (container version 3), or None for YUV video.
        "picture": None if header.picture is None else {
            "width": header.picture.width,
            "height": header.picture.height,
            "color_matrix": header.picture.conversion.matrix,
            "color_range": header.picture.conversion.range,
        },
        "architecture": architecture,
        "settings": header.settings,
        "bitrate": {
            "bytes": total,
            "bpp": 8 * total / (count * pixels) if count else 0.0,
            "kbps": 8 * total / count * float(header.fps) / 1000 if count else 0.0,
            # the whole file, container included (what a --target-kbps counts)
            "file_kbps": 8 * reader.file_size / count * float(header.fps) / 1000 if count else 0.0,
        },
        "frames": frames,
    }


def _frame_header(reader: ContainerReader, number: int) -> dict[str, Any]:
    """The architecture a frame's header names (frames of one file may differ under --arch auto) and the
    bytes that header takes (what each frame spends before its parameters and latents)."""
    from vcodec.bitstream.frame_header import parse_header

    try:
        header, header_bytes = parse_header(reader.read_frame(number))
    except BitstreamError:
        return {"arch": DAMAGED, "header_bytes": None, "frame_version": None, "latent_substreams": None}
    # Substreams (frame format 4) are what a decoder may run in parallel processes.
    return {"arch": header.arch.name, "header_bytes": header_bytes, "frame_version": header.version,
            "latent_substreams": header.latent_substreams}


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
