"""The built-in HEVC anchor: x265 all-intra through PyAV, bits from real packets, PSNR from decoding them."""

from __future__ import annotations

import pytest

from vcodec.eval.codecs import X265Codec
from vcodec.eval.errors import AnchorError, EvalError
from vcodec.eval.hevc import decode_hevc, encode_x265, split_access_units
from vcodec.eval.sequences import Sequence, class_from_directory, write_sample_class
from vcodec.metrics import frame_psnr, psnr_from_mses
from vcodec.samples import sample_frames


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Sequence]:
    folder = tmp_path_factory.mktemp("x265clips")
    write_sample_class(folder / "c8", ["astronaut"], 96, 64, frames=2, bitdepth=8)
    write_sample_class(folder / "c10", ["coffee"], 96, 64, frames=2, bitdepth=10)
    return {8: class_from_directory(folder / "c8", 2)[0], 10: class_from_directory(folder / "c10", 2)[0]}


@pytest.mark.parametrize("bitdepth", [8, 10])
def test_one_frame_stream_is_self_contained_and_decodes(bitdepth: int) -> None:
    frame = sample_frames(64, 48, 1, bitdepth, "chelsea")[0]
    data = encode_x265(frame, 27, "slow")
    # It opens with a VPS NAL unit (header 0x40 0x01): the frame's bits include its parameter sets.
    assert data.startswith(b"\x00\x00\x00\x01\x40\x01")
    assert len(split_access_units(data)) == 1
    (decoded,) = decode_hevc([data])
    assert (decoded.width, decoded.height, decoded.bitdepth) == (64, 48, bitdepth)
    assert 28.0 < frame_psnr(frame, decoded).y < 50.0


def test_stream_carries_no_settings_message() -> None:
    frame = sample_frames(64, 48, 1, 8, "rocket")[0]
    with_info = encode_x265(frame, 32, "slow", "keyint=1:min-keyint=1:psy-rd=0:psy-rdoq=0:aq-mode=0:ipratio=1")
    assert len(encode_x265(frame, 32, "slow")) < len(with_info) - 1000


@pytest.mark.parametrize("bitdepth", [8, 10])
def test_rate_points_fall_in_rate_and_quality(clips: dict[int, Sequence], bitdepth: int) -> None:
    codec = X265Codec(preset="slow", qps=(37, 22, 27, 32))
    sequence = clips[bitdepth]
    assert codec.rate_points(sequence) == ["22", "27", "32", "37"]
    rows = [codec.code(sequence, 0, 1, qp).rate_point_row() for qp in codec.rate_points(sequence)]
    assert [r.bits for r in rows] == sorted((r.bits for r in rows), reverse=True)
    assert [r.psnr_yuv for r in rows] == sorted((r.psnr_yuv for r in rows), reverse=True)
    assert all(r.encode_seconds is not None and r.encode_seconds > 0 for r in rows)
    assert rows[0].codec == "x265-slow" and rows[0].frames == 1


def test_each_frame_is_its_own_encode(clips: dict[int, Sequence]) -> None:
    sequence = clips[8]
    codec = X265Codec(preset="medium")
    result = codec.code(sequence, 0, 2, "32")
    frames = sequence.read_frames(0, 2)
    assert [f.index for f in result.frames] == [0, 1]
    assert [f.bits for f in result.frames] == [8 * len(encode_x265(f, 32, "medium")) for f in frames]
    (decoded,) = decode_hevc([encode_x265(frames[1], 32, "medium")])
    expected = frame_psnr(frames[1], decoded)
    got = psnr_from_mses(result.frames[1].mse, 8)
    assert (got.y, got.u, got.v) == pytest.approx((expected.y, expected.u, expected.v))


def test_settings_name_the_anchor() -> None:
    codec = X265Codec(preset="slow")
    assert "ipratio=1" in codec.describe() and "preset slow" in codec.describe()
    assert codec.settings() != X265Codec(preset="fast").settings()
    assert codec.version().startswith("pyav-")


@pytest.mark.parametrize(("kwargs", "message"), [({"preset": "quick"}, "unknown x265 preset"),
                                                 ({"qps": (22, 60)}, "0..51")])
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(AnchorError, match=message):
        X265Codec(**kwargs)  # type: ignore[arg-type]


def test_missing_frames_are_refused(clips: dict[int, Sequence]) -> None:
    with pytest.raises(EvalError, match="frames 1..2"):
        X265Codec().code(clips[8], 1, 2, "22")
