"""The frame bitstream: header fields, their byte layout, and pure pack / parse functions.

Layout (see docs/bitstream.md for the table): byte 0 = FORMAT_VERSION, then the bit-packed header
fields declared below (MSB first, zero-padded to a byte), a CRC-16 of all header bytes before it, then
the parameter stream, then the latent stream. Every field is range-checked on read, the CRC stops a
damaged header from announcing an absurd frame, and the stream sizes must match the bytes present.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from vcodec.bitstream.bits import BitReader, BitWriter
from vcodec.config import ARM_CONTEXT_LAYOUTS, ARM_CONTEXTS, CHROMA_DOWNSCALES, ArchConfig, ConfigError
from vcodec.format import (
    MAX_ARM_CONTEXT,
    MAX_FRAME_PIXELS,
    MAX_FRAME_SIDE,
    MAX_LATENT_SUBSTREAMS,
    PARAM_SCALE_INDEX_MAX,
    PARAM_STEP_EXP_MAX,
    PARAM_STEP_EXP_MIN,
)
from vcodec.shapes import parameter_group_count
from vcodec.types import SUPPORTED_BITDEPTHS, BitstreamError

FORMAT_VERSION = 7
# Every version that ever reached main is still read; the decoder dispatches on `FrameHeader.version`
# (docs/bitstream.md, "Decoder semantics by version"). tests/golden holds files of each one.
READABLE_VERSIONS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)

# Stored as an index into this tuple: never reorder it (tests freeze it), only append.
ARCH_NAMES: tuple[str, ...] = ("custom", "main", "light", "small", "tiny", "lean")

MAX_DIMENSION = MAX_FRAME_SIDE  # bounds the decoder's memory before anything is allocated
MAX_PIXELS = MAX_FRAME_PIXELS


@dataclass(frozen=True)
class Field:
    name: str
    bits: int
    minimum: int
    maximum: int


_SIZE_FIELDS: tuple[Field, ...] = (
    Field("half_width", 13, 1, MAX_DIMENSION // 2),
    Field("half_height", 13, 1, MAX_DIMENSION // 2),
    Field("bitdepth_index", 2, 0, len(SUPPORTED_BITDEPTHS) - 1),
    Field("arch_name_index", 3, 0, len(ARCH_NAMES) - 1),
    Field("latent_levels", 4, 1, 8),
)
# Versions 1-2: the ARM context is an index into ARM_CONTEXTS, laid out in raster order.
_CONTEXT_FIELDS_V2: tuple[Field, ...] = (Field("arm_context_index", 2, 0, len(ARM_CONTEXTS) - 1),)
# Version 3: any context size, and which layout ("raster" or "priority") picks its neighbours.
_CONTEXT_FIELDS_V3: tuple[Field, ...] = (
    Field("arm_context", 6, 1, MAX_ARM_CONTEXT),
    Field("arm_context_layout_index", 1, 0, len(ARM_CONTEXT_LAYOUTS) - 1),
)
_REST_FIELDS: tuple[Field, ...] = (
    Field("arm_layers", 3, 1, 4),
    Field("synthesis_layers", 3, 0, 4),
    Field("synthesis_residual", 3, 0, 4),
    Field("chroma_downscale_index", 1, 0, len(CHROMA_DOWNSCALES) - 1),
    Field("param_stream_words", 20, 0, (1 << 20) - 1),
    Field("latent_stream_words", 28, 0, (1 << 28) - 1),
)
# Version 4: the latents are coded in this many independent substreams (vcodec.entropy.substreams).
_SUBSTREAM_FIELDS_V4: tuple[Field, ...] = (Field("latent_substreams", 4, 1, MAX_LATENT_SUBSTREAMS),)
# Fixed part of the header, in order, per version. Lists (layer widths, grid flags, modules) follow it.
FIXED_FIELDS_BY_VERSION: dict[int, tuple[Field, ...]] = {
    1: _SIZE_FIELDS + _CONTEXT_FIELDS_V2 + _REST_FIELDS,
    2: _SIZE_FIELDS + _CONTEXT_FIELDS_V2 + _REST_FIELDS,
    3: _SIZE_FIELDS + _CONTEXT_FIELDS_V3 + _REST_FIELDS,
    4: _SIZE_FIELDS + _CONTEXT_FIELDS_V3 + _REST_FIELDS + _SUBSTREAM_FIELDS_V4,
    5: _SIZE_FIELDS + _CONTEXT_FIELDS_V3 + _REST_FIELDS + _SUBSTREAM_FIELDS_V4,  # parameter groups per tensor
    6: _SIZE_FIELDS + _CONTEXT_FIELDS_V3 + _REST_FIELDS + _SUBSTREAM_FIELDS_V4,  # fixed-point upsampling and synthesis
    7: _SIZE_FIELDS + _CONTEXT_FIELDS_V3 + _REST_FIELDS + _SUBSTREAM_FIELDS_V4,  # narrow latents under the table model
}
FIXED_FIELDS = FIXED_FIELDS_BY_VERSION[FORMAT_VERSION]
ARM_WIDTH = Field("arm_width", 7, 1, 64)
SYNTHESIS_WIDTH = Field("synthesis_width", 7, 1, 96)
STEP_EXP = Field("step_exp", 5, PARAM_STEP_EXP_MIN, PARAM_STEP_EXP_MAX)
SCALE_INDEX = Field("scale_index", 8, 0, PARAM_SCALE_INDEX_MAX)
SUBSTREAM_WORDS = Field("substream_words", 28, 0, (1 << 28) - 1)  # version 4: each substream but the last


@dataclass(frozen=True)
class FrameHeader:
    width: int
    height: int
    bitdepth: int
    arch: ArchConfig
    coded_grids: tuple[bool, ...]      # False: the grid is all zeros and not in the latent stream
    step_exps: tuple[int, ...]         # per parameter group (param_coder.parameter_groups), in stored order
    scale_indices: tuple[int, ...]     # per parameter group
    param_stream_bytes: int
    latent_stream_bytes: int
    version: int = FORMAT_VERSION
    # Version 4: the byte size of each latent substream but the last (which takes the rest); () before.
    substream_bytes: tuple[int, ...] = ()

    @property
    def latent_substreams(self) -> int:
        return len(self.substream_bytes) + 1

    def split_latent_stream(self, latent_stream: bytes) -> list[bytes]:
        """The latent stream cut into its substreams (the header has checked that the sizes fit)."""
        parts, start = [], 0
        for size in self.substream_bytes:
            parts.append(latent_stream[start : start + size])
            start += size
        return [*parts, latent_stream[start:]]

    @property
    def preactivated_residual(self) -> bool:
        """Version 2 on: synthesis residual blocks are x + conv(relu(x)); version 1: relu(x + conv(x))."""
        return self.version >= 2


def _write(writer: BitWriter, field: Field, value: int) -> None:
    if not field.minimum <= value <= field.maximum:
        raise ValueError(f"header field {field.name}={value} outside [{field.minimum}, {field.maximum}]")
    writer.write(value, field.bits)


def _read(reader: BitReader, field: Field) -> int:
    value = reader.read(field.bits)
    if not field.minimum <= value <= field.maximum:
        raise BitstreamError(f"header field {field.name}={value} is outside [{field.minimum}, {field.maximum}]")
    return value


def pack_header(header: FrameHeader) -> bytes:
    arch = header.arch
    values = {
        "half_width": header.width // 2,
        "half_height": header.height // 2,
        "bitdepth_index": SUPPORTED_BITDEPTHS.index(header.bitdepth),
        "arch_name_index": ARCH_NAMES.index(arch.name) if arch.name in ARCH_NAMES else 0,
        "latent_levels": arch.latent_levels,
        "arm_context": arch.arm_context,
        "arm_context_layout_index": ARM_CONTEXT_LAYOUTS.index(arch.arm_context_layout),
        "arm_layers": len(arch.arm_hidden),
        "synthesis_layers": len(arch.synthesis_hidden),
        "synthesis_residual": arch.synthesis_residual,
        "chroma_downscale_index": CHROMA_DOWNSCALES.index(arch.chroma_downscale),
        "param_stream_words": header.param_stream_bytes // 4,
        "latent_stream_words": header.latent_stream_bytes // 4,
        "latent_substreams": header.latent_substreams,
    }
    writer = BitWriter()
    for field in FIXED_FIELDS:
        _write(writer, field, values[field.name])
    for width in arch.arm_hidden:
        _write(writer, ARM_WIDTH, width)
    for width in arch.synthesis_hidden:
        _write(writer, SYNTHESIS_WIDTH, width)
    for flag in header.coded_grids:
        writer.write(int(flag), 1)
    if len(header.step_exps) != parameter_group_count(len(arch.synthesis_hidden), arch.synthesis_residual, FORMAT_VERSION) or len(header.scale_indices) != len(header.step_exps):
        raise ValueError("one step and one scale index per parameter group are needed")
    for step_exp, scale_index in zip(header.step_exps, header.scale_indices):
        _write(writer, STEP_EXP, step_exp)
        _write(writer, SCALE_INDEX, scale_index)
    if sum(header.substream_bytes) > header.latent_stream_bytes:
        raise ValueError("latent substreams are larger than the latent stream")
    for size in header.substream_bytes:
        _write(writer, SUBSTREAM_WORDS, size // 4)
    header = bytes([FORMAT_VERSION]) + writer.to_bytes()
    return header + binascii.crc_hqx(header, 0).to_bytes(2, "big")


def parse_header(data: bytes) -> tuple[FrameHeader, int]:
    """Header and the offset of the parameter stream. Validates everything before any allocation."""
    if len(data) < 1:
        raise BitstreamError("frame bitstream is empty")
    if data[0] not in READABLE_VERSIONS:
        raise BitstreamError(f"unsupported frame bitstream version {data[0]} "
                             f"(this vcodec reads {', '.join(map(str, READABLE_VERSIONS))})")
    version = data[0]
    reader = BitReader(data[1:])
    values = {field.name: _read(reader, field) for field in FIXED_FIELDS_BY_VERSION[version]}
    if version < 3:
        values["arm_context"] = ARM_CONTEXTS[values["arm_context_index"]]
        values["arm_context_layout_index"] = ARM_CONTEXT_LAYOUTS.index("raster")
    arm_hidden = tuple(_read(reader, ARM_WIDTH) for _ in range(values["arm_layers"]))
    synthesis_hidden = tuple(_read(reader, SYNTHESIS_WIDTH) for _ in range(values["synthesis_layers"]))
    coded = tuple(bool(reader.read(1)) for _ in range(values["latent_levels"]))
    step_exps, scale_indices = [], []
    for _ in range(parameter_group_count(values["synthesis_layers"], values["synthesis_residual"], version)):
        step_exps.append(_read(reader, STEP_EXP))
        scale_indices.append(_read(reader, SCALE_INDEX))
    substream_bytes = tuple(4 * _read(reader, SUBSTREAM_WORDS) for _ in range(values.get("latent_substreams", 1) - 1))
    if sum(substream_bytes) > 4 * values["latent_stream_words"]:
        raise BitstreamError(f"latent substreams of {sum(substream_bytes)} bytes exceed the latent stream "
                             f"({4 * values['latent_stream_words']} bytes)")
    try:
        arch = ArchConfig(
            name=ARCH_NAMES[values["arch_name_index"]],
            latent_levels=values["latent_levels"],
            arm_context=values["arm_context"],
            arm_context_layout=ARM_CONTEXT_LAYOUTS[values["arm_context_layout_index"]],
            arm_hidden=arm_hidden,
            synthesis_hidden=synthesis_hidden,
            synthesis_residual=values["synthesis_residual"],
            chroma_downscale=CHROMA_DOWNSCALES[values["chroma_downscale_index"]],
        )
    except ConfigError as error:
        raise BitstreamError(f"frame bitstream declares an invalid architecture: {error}") from None
    header = FrameHeader(
        width=2 * values["half_width"],
        height=2 * values["half_height"],
        bitdepth=SUPPORTED_BITDEPTHS[values["bitdepth_index"]],
        arch=arch,
        coded_grids=coded,
        step_exps=tuple(step_exps),
        scale_indices=tuple(scale_indices),
        param_stream_bytes=4 * values["param_stream_words"],
        latent_stream_bytes=4 * values["latent_stream_words"],
        version=version,
        substream_bytes=substream_bytes,
    )
    if 4 * values["half_width"] * values["half_height"] > MAX_PIXELS:
        raise BitstreamError(f"frame size {2 * values['half_width']}x{2 * values['half_height']} exceeds 8K UHD")
    offset = 1 + reader.bytes_consumed()
    if len(data) < offset + 2:
        raise BitstreamError("frame bitstream is truncated (header checksum missing)")
    if binascii.crc_hqx(data[:offset], 0) != int.from_bytes(data[offset : offset + 2], "big"):
        raise BitstreamError("frame header checksum mismatch: the frame bitstream is corrupted")
    offset += 2
    expected = offset + header.param_stream_bytes + header.latent_stream_bytes
    if expected != len(data):
        kind = "truncated" if expected > len(data) else "followed by unexpected bytes"
        raise BitstreamError(f"frame bitstream is {kind}: header announces {expected} bytes, got {len(data)}")
    return header, offset
