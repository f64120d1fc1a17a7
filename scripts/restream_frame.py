#!/usr/bin/env python3
"""Re-code a frame bitstream's latents into N substreams of the current format, losslessly.

The parameters and the latent values stay as they are (the decoded picture is the same, up to the
bands' contexts changing only the latent bits), so decode speed and the rate cost of substreams can be
measured on an existing trained frame without training it again:

    .venv/bin/python scripts/restream_frame.py IN.frame OUT.frame --substreams 2

IN is a raw frame bitstream of any readable version (as `bench_codec.py --hd-file` takes).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from vcodec.bitstream.frame_header import parse_header, pack_header
from vcodec.decoder import decode_latent_grids
from vcodec.entropy.latent_coder import Canvas, encode_latents


def restream(data: bytes, substreams: int) -> bytes:
    header, offset = parse_header(data)
    if header.version < 2:
        raise SystemExit("format version 1 frames have a different synthesis; re-encode them instead")
    grids, arm, offsets = decode_latent_grids(data)
    canvas = Canvas.build([g.shape for g in grids], list(header.coded_grids), offsets, substreams)
    streams, _, _ = encode_latents(grids, arm, canvas)
    latent = b"".join(streams)
    new_header = replace(header, latent_stream_bytes=len(latent),
                         substream_bytes=tuple(len(stream) for stream in streams[:-1]))
    parameters = data[offset : offset + header.param_stream_bytes]
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
