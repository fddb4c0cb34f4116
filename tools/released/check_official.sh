#!/usr/bin/env bash
# Released-layout parity at real size against the unmodified official code (dev-only; needs python3-torch 1.13
# and checkouts of facebookresearch/capi, facebookresearch/mae, microsoft/SimMIM under OFFICIAL_DIR/{capi,mae,simmim}).
#
#   bash tools/released/check_official.sh OFFICIAL_DIR [OUT_DIR=/tmp/released_check] [ARCHS="capi_vitl14 mae_vitb16 simmim_vitb16"]
#
# For each architecture: a random checkpoint in the released layout (CAPI ViT-L/14 in bfloat16 with its 12-block
# decoder, MAE ViT-B/16 {"model"}, SimMIM ViT-B/16 save_checkpoint with optimizer state), the official model's
# patches/global in float64, `deno task embed` on the same images (peak RSS from /usr/bin/time), and the
# scale-relative error (tolerance 1e-4). Prints one PASS/FAIL line per tensor and the peak RSS per model.
set -euo pipefail
OFFICIAL=${1:?usage: check_official.sh OFFICIAL_DIR [OUT_DIR] [ARCHS]}
OUT=${2:-/tmp/released_check}
ARCHS=${3:-capi_vitl14 mae_vitb16 simmim_vitb16}
BACKEND=${BACKEND:-blas}
HERE=$(cd "$(dirname "$0")" && pwd)
REPOS="--capi-repo $OFFICIAL/capi --mae-repo $OFFICIAL/mae --simmim-repo $OFFICIAL/simmim"
declare -A PRESET=([capi_vitl14]=vit_l [mae_vitb16]=vit_b [simmim_vitb16]=vit_b [capi_tiny]= [mae_tiny]= [simmim_tiny]=)
mkdir -p "$OUT"
status=0
for arch in $ARCHS; do
  method=${arch%%_*}
  [ -f "$OUT/$arch.pth" ] || /usr/bin/python3 "$HERE/make_released.py" --arch "$arch" --out-dir "$OUT" $REPOS
  preset=${PRESET[$arch]}
  extra=()
  [ -n "$preset" ] && extra=(--preset "$preset")
  [ "$arch" = mae_tiny ] && extra=(--config '{"numHeads":2}')
  /usr/bin/time -v deno run -A "$HERE/../../bench/embed.ts" --checkpoint "$OUT/$arch.pth" --method "$method" "${extra[@]}" \
    --images "$OUT/${arch}_images.safetensors" --out "$OUT/${arch}_ours.safetensors" --backend "$BACKEND" \
    2> "$OUT/${arch}_embed.log" || { tail -5 "$OUT/${arch}_embed.log"; status=1; continue; }
  grep -E "peak RSS|loaded" "$OUT/${arch}_embed.log" | sed "s|^|$arch: |"
  grep -E "Maximum resident|Elapsed" "$OUT/${arch}_embed.log" | sed "s|^\s*|$arch: time -v: |"
  /usr/bin/python3 "$HERE/compare.py" "$OUT/${arch}_ours.safetensors" "$OUT/${arch}_ref.safetensors" | sed "s|^|$arch: |" || status=1
done
exit $status
