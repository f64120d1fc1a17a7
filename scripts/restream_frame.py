#!/usr/bin/env python3
"""Re-code a frame bitstream into N latent substreams of the current format, keeping its values.

The parameter integers and steps and the latent values stay as they are, so decode speed and the rate
cost of substreams can be measured on an existing trained frame without training it again:

    .venv/bin/python scripts/restream_frame.py IN.frame OUT.frame --substreams 2

IN is a raw frame bitstream of any readable version from 2 (as `bench_codec.py --hd-file` takes). Frames
before format 5 have their parameters regrouped per tensor (each tensor keeps its group's step; the
scales are fitted again). From format 6 the picture is computed in fixed point, so a frame of an earlier
version decodes to the same picture up to the float rounding (a sample one code value away, rarely).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from vcodec.bitstream.frame_header import FORMAT_VERSION, FrameHeader, pack_header, parse_header
from vcodec.decoder import decode_latent_grids
from vcodec.entropy.latent_coder import Canvas, encode_latents
from vcodec.entropy.param_coder import (
    decode_parameters,
    encode_parameters,
    parameter_groups,
    scale_index_for,
)
from vcodec.shapes import parameter_shapes


def regroup_parameters(header: FrameHeader, stream: bytes) -> tuple[bytes, tuple[int, ...], tuple[int, ...]]:
    """The parameter stream of `header`'s frame in the current format's groups: (stream, steps, scales)."""
    shapes = parameter_shapes(header.arch)
    sizes = {(module, name): int(np.prod(shape)) for module, named in shapes.items() for name, shape in named}
    old_groups = parameter_groups(shapes, header.version)
    counts = [group.count for group in old_groups]
    per_tensor: dict[tuple[str, str], tuple[np.ndarray, int]] = {}
    for group, values, step_exp in zip(old_groups, decode_parameters(stream, counts, list(header.scale_indices)),
                                       header.step_exps):
        position = 0
        for name in group.names:
            size = sizes[(group.module, name)]
            per_tensor[(group.module, name)] = (values[position : position + size], step_exp)
            position += size
    coded, step_exps, scale_indices = [], [], []
    for group in parameter_groups(shapes, FORMAT_VERSION):
        parts = [per_tensor[(group.module, name)] for name in group.names]
        if len({step for _, step in parts}) > 1:
            raise SystemExit(f"{group.label}: its tensors had different steps; re-encode the frame instead")
        integers = np.concatenate([values for values, _ in parts]) if parts else np.zeros(0, dtype=np.int64)
        scale_index = scale_index_for(integers)
        coded.append((integers, scale_index))
        step_exps.append(parts[0][1] if parts else 0)
        scale_indices.append(scale_index)
    return encode_parameters(coded), tuple(step_exps), tuple(scale_indices)


def restream(data: bytes, substreams: int) -> bytes:
    header, offset = parse_header(data)
    if header.version < 2:
        raise SystemExit("format version 1 frames have a different synthesis; re-encode them instead")
    grids, arm, offsets = decode_latent_grids(data)
    canvas = Canvas.build([g.shape for g in grids], list(header.coded_grids), offsets, substreams)
    streams, _, _ = encode_latents(grids, arm, canvas)
    latent = b"".join(streams)
    parameters, step_exps, scale_indices = regroup_parameters(header, data[offset : offset + header.param_stream_bytes])
    new_header = replace(header, version=FORMAT_VERSION, step_exps=step_exps, scale_indices=scale_indices,
                         param_stream_bytes=len(parameters), latent_stream_bytes=len(latent),
                         substream_bytes=tuple(len(stream) for stream in streams[:-1]))
    return pack_header(new_header) + parameters + latent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--substreams", type=int, default=2)
    args = parser.parse_args()
    data = args.input.read_bytes()
    out = restream(data, args.substreams)
    args.output.write_bytes(out)
    before, after = parse_header(data)[0], parse_header(out)[0]
    print(f"{args.input.name}: {len(data)} -> {len(out)} bytes ({100 * (len(out) / len(data) - 1):+.2f} %), "
          f"latents {before.latent_stream_bytes} -> {after.latent_stream_bytes}, "
          f"{after.latent_substreams} substreams {[*after.substream_bytes, after.latent_stream_bytes - sum(after.substream_bytes)]}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
