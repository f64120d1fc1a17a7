"""The rate target of `vcodec encode --target-bpp/--target-kbps/--target-psnr`, frame by frame, and the
record of what an encode reached (kept in the container's settings, shown by `vcodec info`).

A bpp target counts each frame's bitstream (the frame's own header included, the container's bytes
not), as `vcodec info` reports bpp. A kbps target counts the whole file: each frame's budget is the
target's bits per frame less the container's bytes shared out over the frames (file header with its
settings record, frame records, index, footer); with an input of unknown length (stdin) only the
per-frame record overhead is reserved.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from vcodec.bitstream.container import (
    FOOTER_BYTES,
    FORMAT_VERSION,
    SequenceHeader,
    index_required,
    pack_file_header,
    record_head_size,
)
from vcodec.io import OptionError, VideoInfo
from vcodec.sequence.reports import FrameStats
from vcodec.types import RateTarget

REACHED_KEY = "reached"
# Room kept in the header's settings for the record of what was reached (written when the encode ends).
REACHED_RECORD_BYTES = 96
INDEX_FIXED_BYTES = 12  # marker, count, CRC
INDEX_ENTRY_BYTES = 12  # offset u64, length u32


def coding_goal(lmbda: float | None, request: tuple[str, float] | None, info: VideoInfo,
                header: SequenceHeader) -> float | RateTarget:
    """What each frame is coded to: the lambda given, or the target of the request (kind, value)."""
    if request is not None:
        return frame_target(request, info, header)
    if lmbda is None:
        raise OptionError("give a rate: --lmbda, --rate or a target")
    return lmbda


def frame_target(request: tuple[str, float], info: VideoInfo, header: SequenceHeader) -> RateTarget:
    """The target every frame is coded to, from the user's request (kind, value)."""
    kind, value = request
    if kind != "kbps":
        return RateTarget(kind, value)
    pixels = info.width * info.height
    frame_bits = value * 1000 / float(info.fps)
    frames = info.frame_count
    overhead = 8 * record_head_size(frames or 1, int(frame_bits / 8))
    if frames:
        final = replace(header, frame_count=frames)
        shared = len(pack_file_header(final)) + REACHED_RECORD_BYTES
        if index_required(FORMAT_VERSION, frames):
            shared += INDEX_FIXED_BYTES + INDEX_ENTRY_BYTES * frames + FOOTER_BYTES
        overhead += 8 * shared / frames
    budget = frame_bits - overhead
    if budget <= 0:
        raise OptionError(f"--target-kbps {value:g} leaves no bits for the frames at {float(info.fps):g} fps: the "
                          f"container alone needs {overhead * float(info.fps) / 1000:.2f} kbps")
    return RateTarget("bpp", budget / pixels)


def reached_record(coded: list[FrameStats], frame_bytes: int, frames: int, pixels: int) -> dict[str, Any]:
    """What the encode reached, for the container's settings: bpp of the frame data of the whole file, and
    of the frames this run coded the mean PSNR-YUV and how many met their target's tolerance."""
    record: dict[str, Any] = {"bpp": round(8 * frame_bytes / (frames * pixels), 6)}
    if coded:
        record["psnr_yuv"] = round(sum(s.psnr.yuv for s in coded) / len(coded), 4)
        record["frames_within"] = sum(1 for s in coded if s.within)
        record["frames_coded"] = len(coded)
        record["probes"] = sum(s.probes for s in coded)
    return record
