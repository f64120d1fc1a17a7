"""Golden files: every frame format version that reached main keeps decoding to the same picture.

tests/golden/v<N>/ holds small .vcc files written by the encoder of version N, the sha256 of their
decoded YUV and of their latent grids, and a reference decoded YUV (scripts/make_golden.py, once per
version; the latents and references were added later with --references). The header layouts below are written out as
data here, not read from the code under test, so a change to the parser cannot change what the test
expects.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from vcodec.bitstream.container import ContainerReader
from vcodec.bitstream.frame_header import FORMAT_VERSION
from vcodec.decoder import decode_frame, decode_latent_grids
from vcodec.format import FIXED_POINT_PICTURE_VERSION
from vcodec.io.formats import frame_to_bytes
from vcodec.model import fixed_point

GOLDEN_DIR = Path(__file__).parent / "golden"
VERSIONS = sorted(int(p.name[1:]) for p in GOLDEN_DIR.glob("v*") if p.is_dir())

# Frozen frame-header layouts: (field, bits) in stored order, after the version byte. Lists follow the
# fixed part: arm widths (7 bits each), synthesis widths (7 bits each), one coded flag per latent grid,
# then (step_exp 5 bits, scale_index 8 bits) per parameter group (3 modules x weight, bias; version 5:
# per tensor).
HEADER_V1_V2: tuple[tuple[str, int], ...] = (
    ("half_width", 13), ("half_height", 13), ("bitdepth_index", 2), ("arch_name_index", 3),
    ("latent_levels", 4), ("arm_context_index", 2), ("arm_layers", 3), ("synthesis_layers", 3),
    ("synthesis_residual", 3), ("chroma_downscale_index", 1), ("param_stream_words", 20),
    ("latent_stream_words", 28),
)
# Version 3: the 2-bit context index becomes the context size (6 bits) and its layout (1 bit).
HEADER_V3: tuple[tuple[str, int], ...] = (
    ("half_width", 13), ("half_height", 13), ("bitdepth_index", 2), ("arch_name_index", 3),
    ("latent_levels", 4), ("arm_context", 6), ("arm_context_layout_index", 1), ("arm_layers", 3),
    ("synthesis_layers", 3), ("synthesis_residual", 3), ("chroma_downscale_index", 1),
    ("param_stream_words", 20), ("latent_stream_words", 28),
)
# Version 4: the number of latent substreams (4 bits) ends the fixed part; after the parameter groups
# fields come the sizes of every substream but the last, 28 bits each (in 4-byte words).
HEADER_V4: tuple[tuple[str, int], ...] = (*HEADER_V3, ("latent_substreams", 4))
# Version 5: the fixed part as version 4; the parameter groups are per tensor (but the ARM's two), so their
# number follows the architecture: groups_v5 below.
# Version 6: the header as version 5 (the upsampling and synthesis run in fixed point).
# Version 7: the header as version 6 (narrow latents are coded under the table model).
FROZEN_HEADERS: dict[int, tuple[tuple[str, int], ...]] = {1: HEADER_V1_V2, 2: HEADER_V1_V2, 3: HEADER_V3, 4: HEADER_V4,
                                                          5: HEADER_V4, 6: HEADER_V4, 7: HEADER_V4}
FROZEN_LISTS: dict[int, dict[str, int]] = {
    1: {"arm_width": 7, "synthesis_width": 7, "coded_flag": 1, "step_exp": 5, "scale_index": 8, "groups": 6},
    2: {"arm_width": 7, "synthesis_width": 7, "coded_flag": 1, "step_exp": 5, "scale_index": 8, "groups": 6},
    3: {"arm_width": 7, "synthesis_width": 7, "coded_flag": 1, "step_exp": 5, "scale_index": 8, "groups": 6},
    4: {"arm_width": 7, "synthesis_width": 7, "coded_flag": 1, "step_exp": 5, "scale_index": 8, "groups": 6,
        "substream_words": 28},
    5: {"arm_width": 7, "synthesis_width": 7, "coded_flag": 1, "step_exp": 5, "scale_index": 8, "groups": 0,
        "substream_words": 28},
    6: {"arm_width": 7, "synthesis_width": 7, "coded_flag": 1, "step_exp": 5, "scale_index": 8, "groups": 0,
        "substream_words": 28},
    7: {"arm_width": 7, "synthesis_width": 7, "coded_flag": 1, "step_exp": 5, "scale_index": 8, "groups": 0,
        "substream_words": 28},
}


def groups_v5(synthesis_hidden: tuple[int, ...], residual: int) -> int:
    """ARM weights, ARM biases, the upsampling kernel, then a weight and a bias tensor per synthesis layer
    (the 1x1 ones and the output layer) and per residual convolution."""
    return 3 + 2 * (len(synthesis_hidden) + 1) + 2 * residual
# Context layout index per arch (0 raster, 1 priority): version 3's files were written when every arch
# read the priority order; main and light went back to raster before version 4.
LAYOUT_INDEX = {3: {"main": 1, "light": 1, "small": 1, "tiny": 1}, 4: {"main": 0, "light": 0, "small": 1, "tiny": 1},
                5: {"main": 0, "light": 0, "small": 1, "tiny": 1},
                6: {"main": 0, "light": 0, "small": 1, "tiny": 1, "lean": 1},
                7: {"main": 0, "light": 0, "small": 1, "tiny": 1, "lean": 1}}
# context, arm, synthesis, residual; arch name index (frozen ARCH_NAMES order)
ARCHS = {"main": (24, (24, 24), (40,), 2), "light": (12, (12, 12), (12,), 1),
         "small": (16, (16, 16), (32,), 2), "tiny": (8, (8, 8), (16,), 2), "lean": (8, (8, 8), (32,), 2)}
ARCH_INDEX = {"main": 1, "light": 2, "small": 3, "tiny": 4, "lean": 5}


def _cases() -> list[tuple[int, str]]:
    return [(version, name) for version in VERSIONS
            for name in json.loads((GOLDEN_DIR / f"v{version}" / "manifest.json").read_text())]


def _manifest(version: int) -> dict[str, dict]:
    return json.loads((GOLDEN_DIR / f"v{version}" / "manifest.json").read_text())


def _frames(version: int, name: str) -> list[bytes]:
    with ContainerReader(GOLDEN_DIR / f"v{version}" / f"{name}.vcc") as reader:
        return [reader.read_frame(entry.number) for entry in reader.entries]


def test_current_version_has_golden_files() -> None:
    """A new frame format version must come with its golden files (and old ones must stay)."""
    assert FORMAT_VERSION in VERSIONS
    assert VERSIONS == list(range(1, FORMAT_VERSION + 1))
    for version in VERSIONS:
        assert len(_manifest(version)) >= 4


# Versions 1-5: the float upsampling and synthesis round by the CPU's kernels (MKL and oneDNN choose per CPU):
# on another CPU than the one that wrote a golden file, a few samples may land one code value away (seen on
# an AMD EPYC against files written elsewhere: 3 of 28 files). The entropy decoding may not move at all.
# From version 6 (FIXED_POINT_PICTURE_VERSION) the picture is computed in fixed point and may not move either.
MAX_SAMPLE_DEVIATION = 1
MIN_EXACT_SHARE = 0.999


def _decode(datas: list[bytes], threads: int) -> bytes:
    """Decoded with `threads` torch threads (formats 1-5), fixed-point picture threads (format 6) and latent
    worker processes."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with mock.patch.object(fixed_point, "_threads", lambda: threads):
            return b"".join(frame_to_bytes(decode_frame(data, workers=threads)) for data in datas)
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize(("version", "name"), _cases())
def test_golden_file_decodes_exactly(version: int, name: str) -> None:
    """Latents bit-exact everywhere; the picture bit-exact across thread counts, and equal to the one the
    writing machine decoded: from version 6 always, before it or else within one code value of the stored
    reference (another CPU's float rounding)."""
    expected = _manifest(version)[name]
    datas = _frames(version, name)
    assert len(datas) == expected["frames"]
    latents = hashlib.sha256()
    for data in datas:
        for grid in decode_latent_grids(data)[0]:
            latents.update(np.ascontiguousarray(grid, dtype=np.int32).tobytes())
    assert latents.hexdigest() == expected["latents_sha256"]
    decoded = _decode(datas, threads=1)
    assert _decode(datas, threads=2) == decoded
    assert _decode(datas, threads=3) == decoded
    if hashlib.sha256(decoded).hexdigest() == expected["decoded_sha256"]:
        return
    assert version < FIXED_POINT_PICTURE_VERSION, "a fixed-point picture decoded to another sha256"
    dtype = np.uint8 if expected["bitdepth"] == 8 else np.dtype("<u2")
    reference = np.frombuffer(gzip.decompress((GOLDEN_DIR / f"v{version}" / f"{name}.decoded.yuv.gz").read_bytes()), dtype)
    samples = np.frombuffer(decoded, dtype)
    assert samples.shape == reference.shape
    difference = np.abs(samples.astype(np.int32) - reference.astype(np.int32))
    assert int(difference.max()) <= MAX_SAMPLE_DEVIATION
    assert np.count_nonzero(difference == 0) >= MIN_EXACT_SHARE * difference.size


def _read_bits(data: bytes, position: int, bits: int) -> tuple[int, int]:
    """An independent MSB-first reader: value and the next bit position."""
    value = 0
    for offset in range(position, position + bits):
        value = (value << 1) | ((data[offset // 8] >> (7 - offset % 8)) & 1)
    return value, position + bits


@pytest.mark.parametrize(("version", "name"), _cases())
def test_golden_header_follows_frozen_layout(version: int, name: str) -> None:
    """Parse each golden frame header with the frozen layout and check what the manifest knows."""
    expected = _manifest(version)[name]
    width, height = (int(v) for v in expected["size"].split("x"))
    context, arm_hidden, synthesis_hidden, residual = ARCHS[expected["arch"]]
    lists = FROZEN_LISTS[version]
    for data in _frames(version, name):
        assert data[0] == version
        body, position, fields = data[1:], 0, {}
        for field, bits in FROZEN_HEADERS[version]:
            fields[field], position = _read_bits(body, position, bits)
        assert (2 * fields["half_width"], 2 * fields["half_height"]) == (width, height)
        assert fields["bitdepth_index"] == (0 if expected["bitdepth"] == 8 else 1)
        assert fields["arch_name_index"] == ARCH_INDEX[expected["arch"]]
        if version < 3:
            assert fields["arm_context_index"] == {12: 0, 24: 1}[context]
        else:
            assert (fields["arm_context"], fields["arm_context_layout_index"]) == (context, LAYOUT_INDEX[version][expected["arch"]])
        assert fields["arm_layers"] == len(arm_hidden)
        assert fields["synthesis_layers"] == len(synthesis_hidden)
        assert fields["synthesis_residual"] == residual
        widths = []
        for _ in range(fields["arm_layers"]):
            value, position = _read_bits(body, position, lists["arm_width"])
            widths.append(value)
        assert tuple(widths) == arm_hidden
        widths = []
        for _ in range(fields["synthesis_layers"]):
            value, position = _read_bits(body, position, lists["synthesis_width"])
            widths.append(value)
        assert tuple(widths) == synthesis_hidden
        position += fields["latent_levels"] * lists["coded_flag"]
        groups = groups_v5(synthesis_hidden, residual) if version >= 5 else lists["groups"]
        position += groups * (lists["step_exp"] + lists["scale_index"])
        substream_words = []
        for _ in range(fields.get("latent_substreams", 1) - 1):
            value, position = _read_bits(body, position, lists["substream_words"])
            substream_words.append(value)
        assert sum(substream_words) <= fields["latent_stream_words"]
        if version >= 4:  # frames of 256 rows or more are coded in two substreams (vcodec.entropy.substreams)
            assert fields["latent_substreams"] == (2 if height >= 256 else 1)
        header_bytes = 1 + (position + 7) // 8 + 2  # version byte, fields, CRC-16
        streams = 4 * (fields["param_stream_words"] + fields["latent_stream_words"])
        assert header_bytes + streams == len(data)
