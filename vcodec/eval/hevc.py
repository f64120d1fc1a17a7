"""HEVC plumbing for the anchors: x265 through PyAV, FFmpeg's HEVC decoder, Annex-B access units, HM logs.

Bits are always counted on real bytes: an x265 encode of one frame is one packet (parameter sets
included); an HM bitstream is split into access units by the rules of H.265 clause 7.4.2.4.4, so
each frame's bits are 8 x the bytes from its first NAL unit's start code to the next access unit's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from vcodec.eval.errors import AnchorError
from vcodec.types import Frame

# NAL unit types that open a new access unit once the current one holds a picture (H.265 7.4.2.4.4):
# VPS, SPS, PPS, access unit delimiter, prefix SEI, and the reserved/unspecified ranges 41..44, 48..55.
_AU_OPENING_TYPES = frozenset({32, 33, 34, 35, 39, *range(41, 45), *range(48, 56)})
_PIX_FMT = {8: "yuv420p", 10: "yuv420p10le"}

# The stand-in for HM all-intra: no psycho-visual tuning, no adaptive QP, I-frames at the QP asked for
# (ipratio=1), and no settings message in the stream (info=0) so the bits are the picture's.
X265_HM_LIKE_PARAMS = "keyint=1:min-keyint=1:psy-rd=0:psy-rdoq=0:aq-mode=0:ipratio=1:info=0"


def _nal_starts(data: bytes) -> list[tuple[int, int]]:
    """(start of the start code, including a leading zero_byte; start of the NAL header) of each NAL unit."""
    starts = []
    position = data.find(b"\x00\x00\x01")
    while position >= 0:
        begin = position - 1 if position > 0 and data[position - 1] == 0 else position
        starts.append((begin, position + 3))
        position = data.find(b"\x00\x00\x01", position + 3)
    return starts


def split_access_units(data: bytes) -> list[bytes]:
    """Cut an Annex-B HEVC byte stream into access units (one coded picture each, with its parameter sets)."""
    starts = _nal_starts(data)
    if not starts or starts[0][0] != 0:
        raise AnchorError("not an Annex-B HEVC byte stream (no start code at its first byte)")
    unit_begins: list[int] = []
    picture_seen = False
    for begin, header in starts:
        if header + 2 > len(data):
            raise AnchorError("HEVC byte stream ends inside a NAL unit header")
        nal_type = (data[header] >> 1) & 0x3F
        opens_unit = False
        if nal_type in _AU_OPENING_TYPES:
            opens_unit = picture_seen
        elif nal_type < 32:
            first_slice_of_picture = header + 2 < len(data) and bool(data[header + 2] & 0x80)
            opens_unit = picture_seen and first_slice_of_picture
        if not unit_begins or opens_unit:
            unit_begins.append(begin)
            picture_seen = False
        if nal_type < 32:
            picture_seen = True
    unit_begins.append(len(data))
    return [data[a:b] for a, b in zip(unit_begins[:-1], unit_begins[1:])]


def frame_to_video_frame(frame: Frame) -> av.VideoFrame:
    planes = np.concatenate([p.reshape(-1) for p in frame.planes()])
    dtype = np.uint8 if frame.bitdepth == 8 else np.uint16
    stacked = planes.astype(dtype).reshape(frame.height * 3 // 2, frame.width)
    return av.VideoFrame.from_ndarray(stacked, format=_PIX_FMT[frame.bitdepth])


def video_frame_to_frame(picture: av.VideoFrame) -> Frame:
    name = picture.format.name
    bitdepth = {v: k for k, v in _PIX_FMT.items()}.get(name)
    if bitdepth is None:
        raise AnchorError(f"decoded pixel format {name} is not YUV 4:2:0 at 8 or 10 bits")
    width, height = picture.width, picture.height
    flat = picture.to_ndarray().reshape(-1).astype(np.uint16)
    luma, chroma = width * height, (width // 2) * (height // 2)
    y = flat[:luma].reshape(height, width)
    u = flat[luma : luma + chroma].reshape(height // 2, width // 2)
    v = flat[luma + chroma : luma + 2 * chroma].reshape(height // 2, width // 2)
    return Frame(y, u, v, bitdepth)


def encode_x265(frame: Frame, qp: int, preset: str, params: str = X265_HM_LIKE_PARAMS) -> bytes:
    """One frame, one all-intra encode: the returned bytes are the whole stream, parameter sets included."""
    context = av.codec.CodecContext.create("libx265", "w")
    context.width = frame.width
    context.height = frame.height
    context.pix_fmt = _PIX_FMT[frame.bitdepth]
    context.time_base = Fraction(1, 25)
    context.framerate = Fraction(25)
    context.options = {"preset": preset, "x265-params": f"{params}:qp={qp}:log-level=error"}
    picture = frame_to_video_frame(frame)
    picture.pts = 0
    try:
        packets = list(context.encode(picture)) + list(context.encode(None))
    except av.error.FFmpegError as err:
        raise AnchorError(f"x265 failed (preset {preset!r}, qp {qp}): {err}") from None
    return b"".join(bytes(packet) for packet in packets)


def decode_hevc(access_units: list[bytes]) -> list[Frame]:
    """Decode access units with FFmpeg's HEVC decoder (bit-exact with HM's decoder)."""
    context = av.codec.CodecContext.create("hevc", "r")
    pictures = []
    try:
        for unit in access_units:
            pictures.extend(context.decode(av.Packet(unit)))
        pictures.extend(context.decode(None))
    except av.error.FFmpegError as err:
        raise AnchorError(f"HEVC decoding failed: {err}") from None
    return [video_frame_to_frame(p) for p in pictures]


@dataclass(frozen=True)
class HmLogFrame:
    """One `POC` line of an HM (or VTM) encoder log."""

    poc: int
    slice_type: str
    qp: int
    bits: int
    psnr_y: float
    psnr_u: float
    psnr_v: float
    seconds: float | None


@dataclass(frozen=True)
class HmLog:
    version: str
    input_file: str
    bitstream_file: str
    qp: int | None
    bitdepth: int | None
    width: int | None
    height: int | None
    first_frame: int
    frames: tuple[HmLogFrame, ...]


_NUMBER = r"(-?[\d.]+|-?nan|-?inf)"
_POC_LINE = re.compile(
    r"^POC\s+(\d+)\s+(?:LId:\s*\d+\s+)?TId:\s*\d+\s+\(\s*(\w+)-SLICE,\s*nQP\s+-?\d+\s+QP\s+(-?\d+)\s*\)\s+(\d+)\s+bits"
    rf"\s+\[Y\s+{_NUMBER}\s+dB\s+U\s+{_NUMBER}\s+dB\s+V\s+{_NUMBER}\s+dB\]"
    r"(?:\s+\[ET\s+(\d+)\s*\])?",
)
_HEADER = {
    "version": re.compile(r"Encoder Version \[([^\]]+)\]"),
    "input_file": re.compile(r"^Input\s+File\s+:\s*(.+?)\s*$"),
    "bitstream_file": re.compile(r"^Bitstream\s+File\s+:\s*(.+?)\s*$"),
    "qp": re.compile(r"^QP\s+:\s*(-?\d+)\s*$"),
    "bitdepth": re.compile(r"^Internal bit depth\s+:\s*\(Y:(\d+)"),
    "size": re.compile(r"^Real\s+Format\s+:\s*(\d+)x(\d+)"),
    "first_frame": re.compile(r"^Frame index\s+:\s*(\d+)\s*-"),
}


def _psnr(text: str, where: str) -> float:
    value = float(text)
    if not np.isfinite(value):
        raise AnchorError(f"{where}: PSNR {text!r} is not a number")
    # HM prints 999.99 dB for a lossless plane; metrics.psnr_from_mse reports 100 dB for that.
    return min(value, 100.0)


def parse_hm_log(text: str, where: str = "HM log") -> HmLog:
    """Per-frame bits and PSNR (HM's peak, 255 << (bitdepth - 8)) from the `POC` lines, in POC order."""
    found: dict[str, re.Match[str]] = {}
    frames = []
    for line in text.splitlines():
        line = line.strip()
        poc = _POC_LINE.match(line)
        if poc:
            number, slice_type, qp, bits, y, u, v, seconds = poc.groups()
            frames.append(HmLogFrame(
                int(number), slice_type, int(qp), int(bits),
                _psnr(y, where), _psnr(u, where), _psnr(v, where),
                float(seconds) if seconds is not None else None,
            ))
            continue
        for key, pattern in _HEADER.items():
            if key not in found and (match := pattern.search(line)) is not None:
                found[key] = match
    if not frames:
        raise AnchorError(f"{where}: no 'POC ... bits [Y .. dB U .. dB V .. dB]' lines: not an HM encoder log")
    frames.sort(key=lambda f: f.poc)
    pocs = [f.poc for f in frames]
    if pocs != list(range(pocs[0], pocs[0] + len(pocs))):
        raise AnchorError(f"{where}: POCs {pocs[:8]}... are not consecutive")
    size = found.get("size")
    return HmLog(
        version=found["version"].group(1) if "version" in found else "",
        input_file=found["input_file"].group(1) if "input_file" in found else "",
        bitstream_file=found["bitstream_file"].group(1) if "bitstream_file" in found else "",
        qp=int(found["qp"].group(1)) if "qp" in found else None,
        bitdepth=int(found["bitdepth"].group(1)) if "bitdepth" in found else None,
        width=int(size.group(1)) if size else None,
        height=int(size.group(2)) if size else None,
        first_frame=int(found["first_frame"].group(1)) if "first_frame" in found else 0,
        frames=tuple(frames),
    )
