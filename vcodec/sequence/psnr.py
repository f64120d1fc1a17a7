"""`vcodec psnr`: the quality of a decoded video against its source, frame by frame and on average; of
a decoded picture against its source picture, in RGB (compare_pictures).

A raw decoded file may not say its own size; it is then read at the reference's, and a mismatch is
named as a size that may differ rather than blamed on frame counts (open_decoded, compare_sequences).
"""

from __future__ import annotations

import os
from pathlib import Path

from vcodec.io import STDIN, OptionError, VideoSource, open_video
from vcodec.io.formats import RAW_SUFFIXES, bitdepth_of_pix_fmt, frame_bytes
from vcodec.io.names import infer_from_name
from vcodec.io.raw import RawReader
from vcodec.metrics import FramePsnr, RgbPsnr, frame_psnr, rgb_psnr


def open_decoded(
    path: str,
    reference: VideoSource,
    *,
    size: tuple[int, int] | None = None,
    pix_fmt: str | None = None,
    bitdepth: int | None = None,
    frames: int | None = None,
) -> tuple[VideoSource, bool]:
    """The decoded video to compare with `reference`, and whether its size is only assumed.

    y4m and FFmpeg inputs describe themselves, and a raw file's name or the options may give its size;
    a raw input that says nothing of its size is read at the reference's (and its bit depth), which
    `compare_sequences` must then say when the videos do not match.
    """
    hints = infer_from_name(path if path != STDIN else "")
    assumed = size is None and (hints.width is None or hints.height is None)
    like = reference.info
    if assumed and path != STDIN and Path(path).suffix.lower() in RAW_SUFFIXES:
        depth = bitdepth_of_pix_fmt(pix_fmt) if pix_fmt else bitdepth or hints.bitdepth or like.bitdepth
        each = frame_bytes(like.width, like.height, depth)
        file_size = os.stat(path).st_size
        if file_size % each:
            raise OptionError(
                f"frame sizes differ: {path} is not {like.width}x{like.height} {depth}-bit like {reference.name} "
                f"({file_size} bytes are not a whole number of its {each}-byte frames); a raw file does not say "
                f"its size: give it in its name (e.g. clip_WxH.yuv) or compare a y4m"
            )
    source = open_video(path, size=size, pix_fmt=pix_fmt, bitdepth=bitdepth, frames=frames, like=like)
    return source, assumed and isinstance(source, RawReader)


def compare_sequences(reference: VideoSource, distorted: VideoSource, size_assumed: bool = False) -> list[FramePsnr]:
    """Per-frame PSNR of `distorted` against `reference`, frame by frame; both must have as many frames.

    `size_assumed`: `distorted` is raw and was read at the reference's size (open_decoded), so a frame
    count that differs may be a frame size that differs, and the message says so first.
    """
    a, b = reference.info, distorted.info
    if (a.width, a.height, a.bitdepth) != (b.width, b.height, b.bitdepth):
        raise OptionError(
            f"frame sizes differ: {reference.name} is {a.width}x{a.height} {a.bitdepth}-bit, "
            f"{distorted.name} is {b.width}x{b.height} {b.bitdepth}-bit"
        )

    def counts_differ(reference_count: int, distorted_count: int) -> OptionError:
        held = f"{distorted_count} frame{'s' if distorted_count != 1 else ''}"
        if size_assumed:
            return OptionError(
                f"frame sizes or frame counts differ: {distorted.name}, read at the size of {reference.name} "
                f"({a.width}x{a.height} {a.bitdepth}-bit; a raw file does not say its own), has {held}, "
                f"{reference.name} {reference_count}; if its frames are of another size, give it in its name "
                "(e.g. clip_WxH.yuv) or compare a y4m"
            )
        return OptionError(f"frame counts differ: {distorted.name} has {held}, {reference.name} {reference_count}")

    if a.frame_count is not None and b.frame_count is not None and a.frame_count != b.frame_count:
        raise counts_differ(a.frame_count, b.frame_count)
    results = []
    ref_frames, dist_frames = reference.frames(), distorted.frames()
    while True:
        ref, dist = next(ref_frames, None), next(dist_frames, None)
        if ref is None or dist is None:
            if ref is not dist:  # (a pipe: counted as it is read)
                more = sum(1 for _ in (dist_frames if ref is None else ref_frames)) + 1
                reference_count, distorted_count = (len(results), len(results) + more) if ref is None else (
                    len(results) + more, len(results))
                raise counts_differ(reference_count, distorted_count)
            return results
        results.append(frame_psnr(ref, dist))


def mean_psnr(values: list[FramePsnr]) -> FramePsnr:
    """Average of per-frame PSNRs, plane by plane (as HM reports a sequence)."""
    n = len(values)
    return FramePsnr(*(sum(getattr(p, c) for p in values) / n for c in "yuv"))


def _is_picture(path: str) -> bool:
    """Whether FFmpeg reads `path` as a still picture; raw YUV, stdin and y4m are never probed."""
    if path == STDIN or Path(path).suffix.lower() in RAW_SUFFIXES or not Path(path).is_file():
        return False
    from vcodec.io.picture import is_picture

    return is_picture(path)


def picture_pair(reference: str, distorted: str) -> bool:
    """Whether `vcodec psnr` compares two pictures (in RGB) rather than two videos (in YUV); a picture and a
    video cannot be compared."""
    kinds = (_is_picture(reference), _is_picture(distorted))
    if kinds[0] != kinds[1]:
        picture, video = (reference, distorted) if kinds[0] else (distorted, reference)
        raise OptionError(f"cannot compare the picture {picture} with the video {video}: compare two pictures "
                          "(RGB PSNR) or two videos (YUV PSNR)")
    return kinds[0]


def compare_pictures(reference: str, distorted: str) -> RgbPsnr:
    """RGB PSNR of a decoded picture against its source: per channel and over all three, peak 255 for 8-bit
    pictures (65535 for 16-bit). Pictures of different sizes or bit depths are refused."""
    from vcodec.io.picture import read_picture

    a, b = read_picture(reference), read_picture(distorted)
    if a.samples.shape != b.samples.shape or a.peak != b.peak:
        bits = {255: 8, 65535: 16}
        raise OptionError(f"picture sizes or bit depths differ: {reference} is {a.width}x{a.height} {bits[a.peak]}-bit RGB, "
                          f"{distorted} is {b.width}x{b.height} {bits[b.peak]}-bit RGB")
    return rgb_psnr(a.samples, b.samples, a.peak)
