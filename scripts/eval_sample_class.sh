#!/usr/bin/env bash
# A small real evaluation without the CTC sequences: a user-made class of three 416x240 clips cut from
# scikit-image photos (first frame), vcodec at the fast and medium presets against x265 all-intra.
# Usage: scripts/eval_sample_class.sh [OUTDIR] [extra `vcodec eval` options]; rerun to resume.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/eval-sample-class}"
shift || true
clips="$out/clips"
python=".venv/bin/python"
"$python" -c "
import sys
from vcodec.eval.sequences import write_sample_class
write_sample_class(sys.argv[1], ['astronaut', 'coffee', 'chelsea'], 416, 240, frames=1)
" "$clips"
exec "$python" -m vcodec.eval eval --class-dir "$clips" -o "$out" --frames 1 \
    --preset fast,medium --anchor x265 --x265-preset slow \
    --workers 2 --threads 1 "$@"
