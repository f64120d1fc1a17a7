"""Reading and writing YUV 4:2:0 video (raw planar files, y4m, pipes, anything FFmpeg decodes), and pictures:
RGB in (PNG, JPEG, ...) and PNG out, converted by vcodec.io.rgb."""

from vcodec.io.errors import InputError, OptionError, OutputExistsError
from vcodec.io.formats import (
    DEFAULT_FPS,
    PIXEL_FORMATS,
    VideoInfo,
    frame_bytes,
    frame_from_bytes,
    frame_to_bytes,
    parse_fps,
    parse_size,
)
from vcodec.io.names import NameHints, infer_from_name
from vcodec.io.inputs import STDIN, open_video
from vcodec.io.output import atomic_output, check_overwrite, open_video_writer, partial_path, video_format_of
from vcodec.io.source import VideoSource

__all__ = [
    "DEFAULT_FPS",
    "PIXEL_FORMATS",
    "STDIN",
    "InputError",
    "NameHints",
    "OptionError",
    "OutputExistsError",
    "VideoInfo",
    "VideoSource",
    "atomic_output",
    "check_overwrite",
    "frame_bytes",
    "frame_from_bytes",
    "frame_to_bytes",
    "infer_from_name",
    "open_video",
    "open_video_writer",
    "parse_fps",
    "parse_size",
    "partial_path",
    "video_format_of",
]
