#!/usr/bin/env bash
# Code every sequence of a directory at several rate points, as a CTC run does.
#
#   scripts/encode_ctc.sh SRC_DIR OUT_DIR [RATE ...]        (rates default to r1 r2 r3 r4)
#
# SRC_DIR holds raw .yuv files named the CTC way (BasketballPass_416x240_50.yuv,
# CatRobot_3840x2160_60fps_10bit_420.yuv, ...) and/or .y4m files. For each sequence and rate it
# writes OUT_DIR/<name>_<rate>.vcc, its per-frame statistics <name>_<rate>.csv and the encoder's
# summary in <name>_<rate>.log, then one line per stream in OUT_DIR/summary.csv.
# Rerunning the script continues where it stopped: finished streams are kept, interrupted ones resumed.
#
# Environment: VCODEC (the command, default "vcodec"), PRESET (default medium), JOBS (frames coded in
# parallel, default 1), VCODEC_ARGS (more encode options, e.g. "--frames 10 --device cuda").
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 SRC_DIR OUT_DIR [RATE ...]" >&2
    exit 2
fi
src_dir=$1
out_dir=$2
shift 2
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(r1 r2 r3 r4)
read -r -a vcodec <<< "${VCODEC:-vcodec}"
read -r -a extra <<< "${VCODEC_ARGS:-}"
preset=${PRESET:-medium}
jobs=${JOBS:-1}

mkdir -p "$out_dir"
shopt -s nullglob
sources=("$src_dir"/*.yuv "$src_dir"/*.y4m)
if [ ${#sources[@]} -eq 0 ]; then
    echo "$0: no .yuv or .y4m files in $src_dir" >&2
    exit 3
fi

summary="$out_dir/summary.csv"
echo "sequence,rate,frames,bpp,psnr_y,psnr_u,psnr_v,psnr_yuv,encode_seconds" > "$summary"
for src in "${sources[@]}"; do
    name=$(basename "${src%.*}")
    for rate in "${rates[@]}"; do
        stream="$out_dir/${name}_${rate}.vcc"
        stats="$out_dir/${name}_${rate}.csv"
        echo "== $name at $rate" >&2
        "${vcodec[@]}" encode "$src" -o "$stream" --rate "$rate" --preset "$preset" --jobs "$jobs" \
            --csv "$stats" --settings --resume "${extra[@]}" 2> >(tee "$out_dir/${name}_${rate}.log" >&2)
        # Mean of the per-frame rows (frame,bits,bpp,psnr_y,psnr_u,psnr_v,psnr_yuv,...,encode_seconds,...).
        awk -F, -v seq="$name" -v rate="$rate" 'NR > 1 {
                n++; bpp += $3; y += $4; u += $5; v += $6; yuv += $7; t += $10 }
            END { if (n) printf "%s,%s,%d,%.6f,%.4f,%.4f,%.4f,%.4f,%.1f\n",
                  seq, rate, n, bpp / n, y / n, u / n, v / n, yuv / n, t }' "$stats" >> "$summary"
    done
done
echo "summary: $summary" >&2
