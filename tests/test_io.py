"""Input and output of YUV video: raw planar, y4m, PyAV-decoded files, names, and their errors."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vcodec.io import (
    InputError,
    OptionError,
    OutputExistsError,
    VideoInfo,
    frame_to_bytes,
    infer_from_name,
    open_video,
    open_video_writer,
    parse_fps,
    parse_size,
)
from vcodec.io.stream import ByteStream
from vcodec.io.y4m import Y4mReader, format_header, parse_header
from vcodec.samples import sample_frames
from vcodec.types import Frame


def same(a: Frame, b: Frame) -> bool:
    return a.bitdepth == b.bitdepth and all(np.array_equal(p, q) for p, q in zip(a.planes(), b.planes()))


@pytest.fixture(scope="module")
def clip8() -> list[Frame]:
    return sample_frames(64, 48, 4, 8, "astronaut")


@pytest.fixture(scope="module")
def clip10() -> list[Frame]:
    return sample_frames(64, 48, 3, 10, "coffee")


def write_raw(path: Path, frames: list[Frame]) -> Path:
    path.write_bytes(b"".join(frame_to_bytes(f) for f in frames))
    return path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("BasketballPass_416x240_50.yuv", (416, 240, Fraction(50), None)),
        ("Cactus_1920x1080_50.yuv", (1920, 1080, Fraction(50), None)),
        ("CatRobot_3840x2160_60fps_10bit_420.yuv", (3840, 2160, Fraction(60), 10)),
        ("D-BQSquare_416x240_60p_yuv420_8b.yuv", (416, 240, Fraction(60), 8)),
        ("Hubble_416x240_30_10bit_420.yuv", (416, 240, Fraction(30), 10)),
        ("clip_64x48_yuv420p10le.yuv", (64, 48, None, 10)),
        ("Johnny_1280x720_60.yuv", (1280, 720, Fraction(60), None)),
        ("Tango2_3840x2160p_60_10b.yuv", (3840, 2160, Fraction(60), 10)),
        ("plain.yuv", (None, None, None, None)),
    ],
)
def test_name_inference(name: str, expected: tuple) -> None:
    hints = infer_from_name(name)
    assert (hints.width, hints.height, hints.fps, hints.bitdepth) == expected


def test_parsers() -> None:
    assert parse_size("1920x1080") == (1920, 1080)
    assert parse_fps("30000/1001") == Fraction(30000, 1001)
    assert parse_fps("29.97") == Fraction(2997, 100)
    with pytest.raises(OptionError):
        parse_size("1920:1080")
    with pytest.raises(InputError, match="odd"):
        parse_size("65x48")
    with pytest.raises(OptionError):
        parse_fps("0")


@pytest.mark.parametrize("bitdepth", [8, 10])
def test_raw_round_trip_with_start_and_frames(tmp_path: Path, clip8, clip10, bitdepth: int) -> None:
    clip = clip8 if bitdepth == 8 else clip10
    path = write_raw(tmp_path / "clip.yuv", clip)
    with open_video(str(path), size=(64, 48), bitdepth=bitdepth) as source:
        assert source.info == VideoInfo(64, 48, bitdepth, Fraction(25), len(clip))
        assert all(same(a, b) for a, b in zip(source.frames(), clip, strict=True))
    with open_video(str(path), size=(64, 48), bitdepth=bitdepth, start=1, frames=1) as source:
        assert source.info.frame_count == 1
        frames = list(source.frames())
    assert len(frames) == 1 and same(frames[0], clip[1])


def test_ten_bit_is_little_endian_two_bytes(clip10) -> None:
    data = frame_to_bytes(clip10[0])
    assert len(data) == 64 * 48 * 3 // 2 * 2
    assert int.from_bytes(data[:2], "little") == int(clip10[0].y[0, 0])


def test_name_gives_size_and_explicit_option_wins(tmp_path: Path, clip8) -> None:
    path = write_raw(tmp_path / "Astro_32x24_50.yuv", clip8)  # 64x48 frames are 4 frames of 32x24 bytes...
    with open_video(str(path)) as source:
        assert (source.info.width, source.info.height, source.info.fps) == (32, 24, Fraction(50))
        assert source.info.frame_count == 16
    with open_video(str(path), size=(64, 48), fps=Fraction(30)) as source:
        assert (source.info.width, source.info.height, source.info.fps) == (64, 48, Fraction(30))
        assert source.info.frame_count == 4


def test_raw_errors(tmp_path: Path, clip8) -> None:
    path = write_raw(tmp_path / "clip.yuv", clip8)
    with pytest.raises(OptionError, match="needs --size"):
        open_video(str(path))
    with pytest.raises(InputError, match="not a whole number of 64x40 yuv420p frames"):
        open_video(str(path), size=(64, 40))
    with pytest.raises(InputError, match="odd"):
        open_video(str(path), size=(63, 48))
    with pytest.raises(InputError, match="unsupported pixel format"):
        open_video(str(path), size=(64, 48), pix_fmt="yuv422p")
    with pytest.raises(OptionError, match="disagree"):
        open_video(str(path), size=(64, 48), pix_fmt="yuv420p", bitdepth=10)
    with pytest.raises(InputError, match="4:4:4"):
        open_video(str(write_raw(tmp_path / "x_64x48_444.yuv", clip8)))


def test_ten_bit_samples_out_of_range_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "clip.yuv"
    path.write_bytes(b"\xff\xff" * (64 * 48 * 3 // 2))
    with open_video(str(path), size=(64, 48), pix_fmt="yuv420p10le") as source:
        with pytest.raises(InputError, match="does not fit in 10 bits"):
            next(source.frames())


@pytest.mark.parametrize("bitdepth", [8, 10])
def test_y4m_round_trip(tmp_path: Path, clip8, clip10, bitdepth: int) -> None:
    clip = clip8 if bitdepth == 8 else clip10
    info = VideoInfo(64, 48, bitdepth, Fraction(50))
    path = tmp_path / "clip.y4m"
    with open_video_writer(str(path), info) as writer:
        for frame in clip:
            writer.write(frame)
    assert path.read_bytes().startswith(b"YUV4MPEG2 W64 H48 F50:1")
    with open_video(str(path), start=1) as source:
        assert source.info.bitdepth == bitdepth and source.info.fps == 50
        assert source.info.frame_count == len(clip) - 1
        assert all(same(a, b) for a, b in zip(source.frames(), clip[1:], strict=True))


@pytest.mark.parametrize(
    ("tag", "bitdepth"), [("C420", 8), ("C420jpeg", 8), ("C420mpeg2", 8), ("C420paldv", 8), ("C420p10", 10), ("", 8)]
)
def test_y4m_colourspaces(tag: str, bitdepth: int) -> None:
    assert parse_header(f"YUV4MPEG2 W64 H48 F25:1 Ip A0:0 {tag}\n".encode()).bitdepth == bitdepth


@pytest.mark.parametrize("tag", ["C444", "C422", "Cmono", "C420p12"])
def test_y4m_unsupported_colourspaces(tag: str) -> None:
    with pytest.raises(InputError, match="unsupported pixel format"):
        parse_header(f"YUV4MPEG2 W64 H48 F25:1 {tag}\n".encode())


def test_y4m_from_a_pipe_with_frame_parameters(clip8) -> None:
    info = VideoInfo(64, 48, 8, Fraction(25))
    data = format_header(info) + b"".join(b"FRAME Ixyz\n" + frame_to_bytes(f) for f in clip8)
    reader = Y4mReader(ByteStream(io.BufferedReader(io.BytesIO(data)), "stdin"), start=2)
    frames = list(reader.frames())
    assert len(frames) == 2 and same(frames[0], clip8[2])


def test_y4m_cut_short_is_an_error(clip8) -> None:
    data = format_header(VideoInfo(64, 48, 8, Fraction(25))) + b"FRAME\n" + frame_to_bytes(clip8[0])[:-5]
    reader = Y4mReader(ByteStream(io.BytesIO(data), "stdin"))
    with pytest.raises(InputError, match="ends inside frame 0"):
        list(reader.frames())


def test_pyav_input_keeps_its_bit_depth(tmp_path: Path, clip10) -> None:
    path = tmp_path / "clip.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p10le"
        for frame in clip10:
            planes = np.concatenate([frame.y.reshape(-1), frame.u.reshape(-1), frame.v.reshape(-1)])
            video = av.VideoFrame.from_ndarray(planes.reshape(72, 64).astype(np.uint16), format="yuv420p10le")
            for packet in stream.encode(video):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with open_video(str(path), start=1) as source:
        assert (source.info.width, source.info.height, source.info.bitdepth) == (64, 48, 10)
        assert source.info.fps == 24
        frames = list(source.frames())
    assert len(frames) == 2 and all(same(a, b) for a, b in zip(frames, clip10[1:]))


def test_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("not a video")
    with pytest.raises(InputError, match="cannot read it as a video"):
        open_video(str(path))


def test_writer_refuses_to_overwrite_and_writes_atomically(tmp_path: Path, clip8) -> None:
    path = tmp_path / "out.yuv"
    path.write_bytes(b"keep")
    info = VideoInfo(64, 48, 8, Fraction(25))
    with pytest.raises(OutputExistsError, match="-y"):
        with open_video_writer(str(path), info):
            pass
    with pytest.raises(RuntimeError):
        with open_video_writer(str(path), info, overwrite=True) as writer:
            writer.write(clip8[0])
            raise RuntimeError("interrupted")
    assert path.read_bytes() == b"keep" and not (tmp_path / "out.yuv.partial").exists()
    with open_video_writer(str(path), info, overwrite=True) as writer:
        writer.write(clip8[0])
    assert path.read_bytes() == frame_to_bytes(clip8[0])


def test_writer_refuses_a_name_whose_suffix_it_cannot_write(tmp_path: Path) -> None:
    info = VideoInfo(64, 48, 8, Fraction(25))
    with pytest.raises(OptionError, match=r"\.yuv.*\.y4m"):
        with open_video_writer(str(tmp_path / "out.mp4"), info):
            pass
    assert list(tmp_path.iterdir()) == []
