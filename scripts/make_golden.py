#!/usr/bin/env python3
"""Write the golden files of the current frame format version under tests/golden/v<N>/.

Golden files pin what a stored file means: tests decode each of them and compare the sha256 of the
decoded YUV with the one recorded here. They are written once per format version, never rewritten:

    VCODEC_REGENERATE_GOLDEN=1 .venv/bin/python scripts/make_golden.py

refuses unless VCODEC_REGENERATE_GOLDEN=1 is set, and refuses a version whose folder already exists
(a change to what the decoder computes needs a new format version, hence a new folder).
--python runs another checkout's vcodec (e.g. an old commit in a git worktree) to write its version.

    VCODEC_REGENERATE_GOLDEN=1 .venv/bin/python scripts/make_golden.py --container

writes tests/golden/container/v<N>/ for the current *container* version instead: the frames of the
newest frame golden files muxed by this checkout's ContainerWriter (nothing is encoded), with the
sha256 of each frame and the header fields in a manifest.

    VCODEC_REGENERATE_GOLDEN=1 .venv/bin/python scripts/make_golden.py --references

adds to every frame golden file lacking them the sha256 of its latent grids and a reference decoded YUV
(write_references: what lets the test tell an entropy-decoding change from a float-rounding one).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "tests" / "golden"

# name: (arch, bitdepth, frames, photo); 96x64 frames keep each file to a few KB. Version 3 added the
# small and tiny architectures (versions 1-2 were written with main and light only), version 6 lean.
CASES: dict[str, tuple[str, int, int, str]] = {
    "main_8bit_1f": ("main", 8, 1, "astronaut"),
    "main_10bit_2f": ("main", 10, 2, "coffee"),
    "light_8bit_2f": ("light", 8, 2, "chelsea"),
    "light_10bit_1f": ("light", 10, 1, "rocket"),
    "small_8bit_1f": ("small", 8, 1, "coffee"),
    "tiny_10bit_2f": ("tiny", 10, 2, "astronaut"),
    "main_8bit_1f_tall": ("main", 8, 1, "chelsea"),
    "lean_8bit_1f": ("lean", 8, 1, "rocket"),
}
SIZE = "96x64"
# Version 4 added a case tall enough (256 rows) for two latent substreams that cut the full-resolution
# grid into two bands (vcodec.entropy.substreams).
CASE_SIZES: dict[str, str] = {"main_8bit_1f_tall": "64x256"}
ITERATIONS = 120


def _run(python: str, cwd: Path, *args: str) -> None:
    subprocess.run([python, "-m", "vcodec", *args], cwd=cwd, check=True)


def _frame_version(vcc: Path) -> int:
    """Byte 0 of the first frame payload: read with the container reader of this checkout."""
    from vcodec.bitstream.container import ContainerReader

    with ContainerReader(vcc) as reader:
        return reader.read_frame(0)[0]


# name: (frame golden file whose frames it holds, finished, settings kept, RGB picture as (matrix, range,
# width, height) or None). Settings are fixed here, not an encode's, so that the files are the same whoever
# writes them. Version 3 added the RGB picture case (versions 1 and 2 cannot describe one).
CONTAINER_CASES: dict[str, tuple[str, bool, bool, tuple[str, str, int, int] | None]] = {
    "one_frame_lean": ("main_8bit_1f", True, False, None),
    "two_frames_settings": ("light_8bit_2f", True, True, None),
    "unfinished_10bit": ("tiny_10bit_2f", False, True, None),
    "one_frame_rgb_picture": ("main_8bit_1f", True, False, ("bt709", "limited", 95, 63)),
}
CONTAINER_SETTINGS = {"arch": "main", "encoder": "vcodec golden", "preset": "fast", "lmbda": 0.001}


def write_container_goldens() -> None:
    """tests/golden/container/v<N>/: the current container version, from the newest frame golden files."""
    from dataclasses import replace

    from vcodec.bitstream.container import FORMAT_VERSION, ContainerReader, ContainerWriter, pack_picture
    from vcodec.types import ColorConversion, RgbPicture

    frame_versions = sorted(int(p.name[1:]) for p in GOLDEN_DIR.glob("v*") if p.is_dir())
    source_dir = GOLDEN_DIR / f"v{frame_versions[-1]}"
    target = GOLDEN_DIR / "container" / f"v{FORMAT_VERSION}"
    if target.exists():
        sys.exit(f"refusing: {target} exists; golden files of a version are never rewritten")
    target.mkdir(parents=True)
    manifest: dict[str, dict[str, object]] = {}
    for name, (source, finished, keep, rgb) in CONTAINER_CASES.items():
        picture = RgbPicture(ColorConversion(rgb[0], rgb[1]), rgb[2], rgb[3]) if rgb else None
        with ContainerReader(source_dir / f"{source}.vcc") as reader:
            header = replace(reader.header, frame_count=0, settings=CONTAINER_SETTINGS, picture=picture)
            frames = [reader.read_frame(number) for number in range(reader.frame_count)]
        path = target / f"{name}.vcc"
        writer = ContainerWriter.create(path, header)
        for frame in frames:
            writer.append(frame)
        if finished:
            writer.finish(keep_settings=keep)
        writer.close()
        manifest[name] = {
            "source": f"v{frame_versions[-1]}/{source}", "finished": finished,
            "settings": CONTAINER_SETTINGS if keep else {},
            "width": header.width, "height": header.height, "bitdepth": header.bitdepth,
            "fps": f"{header.fps.numerator}/{header.fps.denominator}",
            "frame_sha256": [hashlib.sha256(frame).hexdigest() for frame in frames],
            "file_bytes": path.stat().st_size,
        }
        if picture is not None:
            manifest[name] |= {"rgb_picture": pack_picture(picture), "conversion": [rgb[0], rgb[1]],
                               "picture_size": [rgb[2], rgb[3]]}
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(CONTAINER_CASES)} golden files of container format version {FORMAT_VERSION} to {target}")


def write_references() -> None:
    """For every frame golden file: the sha256 of its entropy-decoded latent grids (int32, frame after frame),
    which must match exactly on any machine, and, for versions before the fixed-point picture, its decoded
    YUV as this machine's decoder gives it (NAME.decoded.yuv.gz), which another CPU's float synthesis may
    differ from by one code value on a few samples (tests/test_golden.py; from version 6 the picture's
    sha256 must match everywhere). Files that already have them are left as they are."""
    import gzip

    import numpy as np

    from vcodec.bitstream.container import ContainerReader
    from vcodec.decoder import decode_frame, decode_latent_grids
    from vcodec.format import FIXED_POINT_PICTURE_VERSION
    from vcodec.io.formats import frame_to_bytes

    for folder in sorted(p for p in GOLDEN_DIR.glob("v*") if p.is_dir()):
        manifest_path = folder / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        exact_picture = int(folder.name[1:]) >= FIXED_POINT_PICTURE_VERSION
        for name, entry in manifest.items():
            reference = folder / f"{name}.decoded.yuv.gz"
            if "latents_sha256" in entry and (exact_picture or reference.exists()):
                continue
            with ContainerReader(folder / f"{name}.vcc") as reader:
                frames = [reader.read_frame(e.number) for e in reader.entries]
            latents = hashlib.sha256()
            for data in frames:
                for grid in decode_latent_grids(data)[0]:
                    latents.update(np.ascontiguousarray(grid, dtype=np.int32).tobytes())
            entry["latents_sha256"] = latents.hexdigest()
            if not exact_picture:
                decoded = b"".join(frame_to_bytes(decode_frame(data)) for data in frames)
                reference.write_bytes(gzip.compress(decoded, mtime=0))
            print(f"{folder.name}/{name}: latents{'' if exact_picture else ' and reference'} written", file=sys.stderr)
        manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=sys.executable, help="interpreter of the vcodec that encodes")
    parser.add_argument("--source", type=Path, default=Path.cwd(), help="checkout whose vcodec encodes")
    parser.add_argument("--container", action="store_true", help="write the current container version's files")
    parser.add_argument("--references", action="store_true",
                        help="add the latents' sha256 and a reference decoded YUV to every frame golden file lacking them")
    args = parser.parse_args()
    if os.environ.get("VCODEC_REGENERATE_GOLDEN") != "1":
        sys.exit("refusing: golden files are written once per format version (set VCODEC_REGENERATE_GOLDEN=1)")
    if args.container:
        write_container_goldens()
        return
    if args.references:
        write_references()
        return
    manifest: dict[str, dict[str, object]] = {}
    version = None
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for name, (arch, bitdepth, frames, photo) in CASES.items():
            size = CASE_SIZES.get(name, SIZE)
            clip = work / f"{name}_{size}.{'yuv'}"
            vcc, decoded = work / f"{name}.vcc", work / f"{name}.yuv"
            pix_fmt = "yuv420p" if bitdepth == 8 else "yuv420p10le"
            _run(args.python, args.source, "sample", "-o", str(clip), "--size", size, "--frames", str(frames),
                 "--bitdepth", str(bitdepth), "--photo", photo, "-y")
            _run(args.python, args.source, "encode", str(clip), "--size", size, "--pix-fmt", pix_fmt, "-o", str(vcc),
                 "--preset", "fast", "--arch", arch, "--iterations", str(ITERATIONS), "--rate", "r2", "-q", "-y")
            _run(args.python, args.source, "decode", str(vcc), "-o", str(decoded), "-y")
            file_version = _frame_version(vcc)
            if version not in (None, file_version):
                sys.exit(f"cases were written with different frame versions ({version}, {file_version})")
            version = file_version
            manifest[name] = {
                "arch": arch, "bitdepth": bitdepth, "frames": frames, "size": size,
                "decoded_sha256": hashlib.sha256(decoded.read_bytes()).hexdigest(),
            }
        target = GOLDEN_DIR / f"v{version}"
        if target.exists():
            sys.exit(f"refusing: {target} exists; golden files of a version are never rewritten")
        target.mkdir(parents=True)
        for name in CASES:
            shutil.copyfile(work / f"{name}.vcc", target / f"{name}.vcc")
        (target / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(CASES)} golden files of frame format version {version} to {target}")


if __name__ == "__main__":
    main()
