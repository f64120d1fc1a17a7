"""In-process decode time of one frame by two checkouts of vcodec, in turn (A B A B ...).

    .venv/bin/python scripts/decode_in_turn.py FRAME.frame CHECKOUT_A CHECKOUT_B [--rounds 5] [--repeats 15]

FRAME is a frame bitstream (as scripts/bench_codec.py's --sd-file); a CHECKOUT is a source tree whose C
extensions are built (a git worktree with the .so files built or copied in). Each round runs each checkout
in a fresh interpreter (PYTHONPATH=CHECKOUT) that decodes the frame once to warm up and then `repeats`
times; it prints each side's best and median and the ratio of the bests, round by round, then the median
ratio. Both sides' decoded frames must be byte-identical, or it stops. The machine's speed drifts: the
ratios of rounds taken side by side are the figure to quote, not one side's absolute time.

--frame-b OTHER.frame: checkout B decodes OTHER instead, e.g. the same frame re-coded in a format that only
one checkout reads (scripts/restream_frame.py keeps its latents and parameters, hence its picture).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

_PROBE = """
import hashlib, json, sys, time
from vcodec.decoder import decode_frame
from vcodec.io.formats import frame_to_bytes
data = open(sys.argv[1], "rb").read()
digest = hashlib.sha256(frame_to_bytes(decode_frame(data))).hexdigest()
seconds = []
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    decode_frame(data)
    seconds.append(time.perf_counter() - start)
print(json.dumps({"seconds": seconds, "sha256": digest}))
"""


def decode_times(checkout: Path, frame: Path, repeats: int) -> dict:
    environment = {**os.environ, "PYTHONPATH": str(checkout)}
    result = subprocess.run([sys.executable, "-c", _PROBE, str(frame), str(repeats)], env=environment,
                            capture_output=True, text=True, check=True, cwd=checkout)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("frame", type=Path)
    parser.add_argument("a", type=Path, help="checkout A (its ratio to B is printed)")
    parser.add_argument("b", type=Path, help="checkout B")
    parser.add_argument("--frame-b", type=Path, help="the frame checkout B decodes (default: FRAME)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    ratios = []
    for round_index in range(args.rounds):
        a = decode_times(args.a.resolve(), args.frame.resolve(), args.repeats)
        b = decode_times(args.b.resolve(), (args.frame_b or args.frame).resolve(), args.repeats)
        if a["sha256"] != b["sha256"]:
            print("the two checkouts decode the frame differently", file=sys.stderr)
            return 1
        ratios.append(min(a["seconds"]) / min(b["seconds"]))
        print(f"round {round_index + 1}: A best {min(a['seconds']) * 1e3:.1f} ms, median "
              f"{statistics.median(a['seconds']) * 1e3:.1f}; B best {min(b['seconds']) * 1e3:.1f} ms, median "
              f"{statistics.median(b['seconds']) * 1e3:.1f}; A/B best {ratios[-1]:.3f}")
    print(f"median A/B of the bests over {args.rounds} rounds: {statistics.median(ratios):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
