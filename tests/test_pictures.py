"""Pictures through the command line: a PNG coded, described, decoded back to PNG and compared in RGB.

The PNGs are crops of scikit-image photos written by PyAV; encodes use the fast preset with few iterations
(the plumbing is tested here, not the quality)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from skimage import data

from vcodec.bitstream.container import ContainerReader, ContainerWriter, SequenceHeader
from vcodec.cli import ExitCode, main
from vcodec.decoder import decode_frame
from vcodec.io import open_video
from vcodec.io.picture import encode_png, read_picture
from vcodec.io.rgb import frame_to_rgb
from vcodec.metrics import rgb_psnr
from vcodec.sequence.resume import ResumeError, check_compatible
from vcodec.types import ColorConversion, RgbPicture

FAST = ["--lmbda", "0.002", "--preset", "fast", "--arch", "tiny", "--iterations", "20", "--threads", "1", "-q"]


def write_png(path: Path, samples: np.ndarray, pix_fmt: str) -> Path:
    codec = av.CodecContext.create("png", "w")
    codec.height, codec.width = samples.shape[:2]
    codec.pix_fmt = pix_fmt
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(samples), format=pix_fmt)
    path.write_bytes(b"".join(bytes(p) for p in [*codec.encode(frame), *codec.encode(None)]))
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pictures")
    astronaut = data.astronaut()[40:232:4, 120:376:4]  # 48 x 64
    write_png(root / "astro.png", astronaut, "rgb24")
    write_png(root / "coffee_odd.png", data.coffee()[100:149, 200:265], "rgb24")  # 49 x 65
    write_png(root / "astro16.png", astronaut.astype(np.uint16) * 257, "rgb48be")
    write_png(root / "grey.png", data.camera()[::8, ::8][:48, :64], "gray")
    opaque = np.concatenate([astronaut, np.full((*astronaut.shape[:2], 1), 255, np.uint8)], axis=2)
    write_png(root / "opaque.png", opaque, "rgba")
    transparent = opaque.copy()
    transparent[0, 0, 3] = 254
    write_png(root / "transparent.png", transparent, "rgba")
    return root


@pytest.fixture(scope="module")
def astro_vcc(pictures: Path) -> Path:
    # Enough iterations for a picture clearly nearer its source by its own conversion than by another.
    args = ["encode", str(pictures / "astro.png"), "-o", str(pictures / "astro.vcc"), *FAST, "--iterations", "150"]
    assert main(args) == 0
    return pictures / "astro.vcc"


def test_png_round_trip(pictures: Path, astro_vcc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """encode PNG -> .vcc -> decode PNG: the PNG holds the decoded frame converted back by the conversion the file
    records (the default, BT.601 full range), and `vcodec psnr` reports its RGB PSNR against the source."""
    with ContainerReader(astro_vcc) as reader:
        header, payload = reader.header, reader.read_frame(0)
    assert header.picture == RgbPicture(ColorConversion("bt601", "full"), 64, 48)
    assert (header.width, header.height, header.bitdepth) == (64, 48, 8)
    out = pictures / "astro_dec.png"
    assert run(capsys, "decode", str(astro_vcc), "-o", str(out), "-q")[0] == 0
    decoded = read_picture(str(out)).samples
    expected = frame_to_rgb(decode_frame(payload), ColorConversion(), 64, 48)
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, expected)
    code, text, _ = run(capsys, "psnr", str(pictures / "astro.png"), str(out), "--json")
    reported = json.loads(text)["rgb"]
    value = rgb_psnr(read_picture(str(pictures / "astro.png")).samples, decoded, 255)
    assert code == 0 and reported == {"r": value.r, "g": value.g, "b": value.b, "mean": value.rgb}
    wrong = frame_to_rgb(decode_frame(payload), ColorConversion("bt709", "limited"), 64, 48)
    assert value.rgb > rgb_psnr(read_picture(str(pictures / "astro.png")).samples, wrong, 255).rgb + 1
    # The same file decodes to its YUV, too.
    assert run(capsys, "decode", str(astro_vcc), "-o", str(pictures / "astro_dec.yuv"), "-q")[0] == 0
    frame = decode_frame(payload)
    assert (pictures / "astro_dec.yuv").read_bytes() == b"".join(p.astype(np.uint8).tobytes() for p in frame.planes())


def test_odd_picture_with_a_named_conversion(pictures: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vcc = pictures / "coffee.vcc"
    args = ["encode", str(pictures / "coffee_odd.png"), "-o", str(vcc), "--color-matrix", "bt709",
            "--color-range", "limited", *FAST]
    assert main(args) == 0
    code, text, _ = run(capsys, "info", str(vcc))
    assert code == 0 and "container v3" in text and "Sequence: 66x50" in text
    assert "Picture: 65x49 RGB, converted to YUV by BT.709 limited range" in text
    code, text, _ = run(capsys, "info", str(vcc), "--json")
    assert json.loads(text)["picture"] == {"width": 65, "height": 49, "color_matrix": "bt709", "color_range": "limited"}
    out = pictures / "coffee_dec.png"
    assert run(capsys, "decode", str(vcc), "-o", str(out), "-q")[0] == 0
    with ContainerReader(vcc) as reader:
        expected = frame_to_rgb(decode_frame(reader.read_frame(0)), ColorConversion("bt709", "limited"), 65, 49)
    assert np.array_equal(read_picture(str(out)).samples, expected)
    code, text, _ = run(capsys, "psnr", str(pictures / "coffee_odd.png"), str(out))
    assert code == 0 and text.startswith("PSNR RGB R ") and text.rstrip().endswith("dB")


def test_sixteen_bit_png_codes_at_ten_bits_and_decodes_to_sixteen(pictures: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    vcc = pictures / "astro16.vcc"
    assert main(["encode", str(pictures / "astro16.png"), "-o", str(vcc), *FAST]) == 0
    with ContainerReader(vcc) as reader:
        frame = decode_frame(reader.read_frame(0))
        assert reader.header.bitdepth == frame.bitdepth == 10
    assert run(capsys, "decode", str(vcc), "-o", str(pictures / "astro16_dec.png"), "-q")[0] == 0
    decoded = read_picture(str(pictures / "astro16_dec.png")).samples
    assert decoded.dtype == np.uint16 and decoded.shape == (48, 64, 3)
    assert np.array_equal(decoded, frame_to_rgb(frame, ColorConversion(), 64, 48))


@pytest.mark.parametrize("name", ["grey.png", "opaque.png"])
def test_grey_and_opaque_pictures_read_as_rgb(pictures: Path, name: str) -> None:
    with open_video(str(pictures / name)) as source:
        frames = list(source.frames())
        assert source.info.picture == RgbPicture(ColorConversion(), 64, 48) and len(frames) == 1
    if name == "grey.png":  # no colour: neutral chroma
        assert set(np.unique(frames[0].u)) == {128} and set(np.unique(frames[0].v)) == {128}
    else:  # the alpha channel of an opaque picture is dropped
        with open_video(str(pictures / "astro.png")) as source:
            assert all(np.array_equal(a, b) for a, b in zip(frames[0].planes(), next(source.frames()).planes()))


def test_psnr_of_picture_pairs(pictures: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """RGB PSNR, 8-bit peak: red one code off everywhere is 48.13 dB in R, 100 (equal) in G and B, and
    10 log10(255^2 / (1/3)) = 52.90 dB over the three channels."""
    source = read_picture(str(pictures / "astro.png")).samples
    shifted = source.copy()
    shifted[..., 0] = np.where(source[..., 0] < 255, source[..., 0] + 1, 254)
    write_png(pictures / "shifted.png", shifted, "rgb24")
    code, text, _ = run(capsys, "psnr", str(pictures / "astro.png"), str(pictures / "shifted.png"))
    assert code == 0 and text == "PSNR RGB R 48.13 G 100.00 B 100.00 mean 52.90 dB\n"


@pytest.mark.parametrize(("args", "code", "message"), [
    (["encode", "transparent.png", "-o", "t.vcc", *FAST], ExitCode.INPUT, "transparent.png: has transparent pixels"),
    (["encode", "astro.png", "-o", "t.vcc", "--color-matrix", "bt2020", *FAST], ExitCode.USAGE,
     "--color-matrix bt2020: expected bt601 or bt709"),
    (["encode", "clip_64x48.yuv", "-o", "t.vcc", "--color-range", "limited", *FAST], ExitCode.USAGE,
     "--color-matrix and --color-range apply to RGB pictures"),
    (["decode", "yuv.vcc", "-o", "t.png"], ExitCode.USAGE, "yuv.vcc holds YUV video, not a picture coded from RGB"),
    (["decode", "two.vcc", "-o", "t.png"], ExitCode.USAGE, "a PNG holds one picture and the range selects 2 frames"),
    (["decode", "damaged.vcc", "-o", "t.png"], ExitCode.BITSTREAM, "frame 0 is damaged (CRC mismatch): nothing was"),
    (["psnr", "astro.png", "clip_64x48.yuv"], ExitCode.USAGE, "cannot compare the picture astro.png with the video"),
    (["psnr", "astro.png", "coffee_odd.png"], ExitCode.USAGE, "astro.png is 64x48 8-bit RGB, coffee_odd.png is 65x49"),
    (["psnr", "astro.png", "astro16.png"], ExitCode.USAGE, "picture sizes or bit depths differ"),
], ids=["transparent", "matrix", "yuv with conversion", "yuv to png", "two frames", "damaged", "picture and video",
        "picture sizes", "bit depths"])
def test_picture_errors_are_one_line(pictures: Path, astro_vcc: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str], args: list[str], code: int,
                                     message: str) -> None:
    monkeypatch.chdir(pictures)
    if not (pictures / "two.vcc").exists():
        assert main(["sample", "-o", "clip_64x48.yuv", "--size", "64x48", "--frames", "1", "-q"]) == 0
        with ContainerReader(astro_vcc) as reader:
            header, payload = reader.header, reader.read_frame(0)
        for name, picture, frames in (("yuv.vcc", None, 1), ("two.vcc", header.picture, 2)):
            writer = ContainerWriter.create(pictures / name, SequenceHeader(64, 48, 8, Fraction(25), picture=picture))
            for _ in range(frames):
                writer.append(payload)
            writer.finish()
            writer.close()
        damaged = bytearray(astro_vcc.read_bytes())
        damaged[-1] ^= 0xFF
        (pictures / "damaged.vcc").write_bytes(bytes(damaged))
    returned, _, stderr = run(capsys, *args)
    assert returned == code and stderr.startswith("vcodec: error: ") and stderr.count("\n") == 1, stderr
    assert message in stderr
    assert not (pictures / "t.vcc").exists() and not (pictures / "t.png").exists()
    if args[1] == "two.vcc":  # one frame of it is a picture
        assert main(["decode", "two.vcc", "-o", "t.png", "--frames", "1:2", "-q"]) == 0
        (pictures / "t.png").unlink()


def test_resume_refuses_another_picture_or_conversion() -> None:
    picture = RgbPicture(ColorConversion(), 63, 48)
    stored = SequenceHeader(64, 48, 8, Fraction(25), settings={"arch": "main"}, picture=picture)
    for other in (None, RgbPicture(ColorConversion("bt709", "full"), 63, 48), RgbPicture(ColorConversion(), 64, 48)):
        wanted = SequenceHeader(64, 48, 8, Fraction(25), settings={"arch": "main"}, picture=other)
        with pytest.raises(ResumeError, match="RGB picture converted with BT.601 full range"):
            check_compatible(stored, wanted, Path("x.vcc"))
    check_compatible(stored, stored, Path("x.vcc"))


def test_encode_png_writes_what_ffmpeg_reads_back() -> None:
    samples = data.astronaut()[:9, :7]
    path_data = encode_png(samples)
    assert path_data[:8] == b"\x89PNG\r\n\x1a\n"
    container = av.open(__import__("io").BytesIO(path_data))
    assert np.array_equal(next(container.decode(video=0)).to_ndarray(), samples)


def test_encode_help_names_the_conversion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["encode", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.replace("\u2502", " ").split())  # (without the box of rich)
    for words in ("--color-matrix", "bt601 or bt709", "default bt601", "--color-range", "full (0-255) or limited",
                  "default full", "BT.601 full range"):
        assert words in text, words
