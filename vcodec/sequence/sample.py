"""`vcodec sample`: a short test clip to try the codec on, without finding a video first.

The frames come from vcodec.samples (scikit-image photos), which is imported only when a clip is made.
"""

from __future__ import annotations

from fractions import Fraction

from vcodec.io import OptionError, VideoInfo, open_video_writer


def write_sample(
    path: str, width: int, height: int, frames: int, bitdepth: int, photo: str, fps: Fraction, overwrite: bool
) -> VideoInfo:
    """A short test clip from a scikit-image photo, raw or y4m by suffix (`-` for stdout)."""
    from vcodec.samples import sample_frames

    if frames < 1:
        raise OptionError(f"--frames {frames} must be positive")
    clip = sample_frames(width, height, frames, bitdepth, photo)
    info = VideoInfo(width, height, bitdepth, fps, frames)
    with open_video_writer(path, info, overwrite=overwrite) as writer:
        for frame in clip:
            writer.write(frame)
    return info
