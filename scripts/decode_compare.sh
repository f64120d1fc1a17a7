#!/usr/bin/env bash
# Decode a stream and measure it against its source through a pipe, without a file in between.
#
#   scripts/decode_compare.sh STREAM.vcc SOURCE [FRAMES]
#
# SOURCE is the original .yuv (sized by its CTC name or by SIZE=WxH in the environment) or .y4m.
# FRAMES is a range as `vcodec decode --frames` takes it (N, A:B); the same frames of the source are
# compared. Prints per-frame and mean PSNR (HM conventions, YUV weighted 6:1:1).
#
# The same pipe works with other tools, e.g. to look at the result:
#   vcodec decode STREAM.vcc -o - --format y4m | ffplay -
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 STREAM.vcc SOURCE [FRAMES]" >&2
    exit 2
fi
stream=$1
source=$2
frames=${3:-}
read -r -a vcodec <<< "${VCODEC:-vcodec}"

decode_range=()
compare_range=()
if [ -n "$frames" ]; then
    decode_range=(--frames "$frames")
    case $frames in
        *:*) first=${frames%%:*}; last=${frames#*:} ;;
        *) first=0; last=$frames ;;
    esac
    first=${first:-0}
    compare_range=(--start "$first")
    [ -n "$last" ] && compare_range+=(--frames $((last - first)))
fi
size_option=()
[ -n "${SIZE:-}" ] && size_option=(--size "$SIZE")

"${vcodec[@]}" decode "$stream" -o - --format y4m -q "${decode_range[@]}" \
    | "${vcodec[@]}" psnr "$source" - "${size_option[@]}" "${compare_range[@]}"
