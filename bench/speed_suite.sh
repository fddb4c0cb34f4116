#!/usr/bin/env bash
# The CPU speed comparison of issue 12 (item 5) in one go, for an idle machine: for each of vit, capi, mae and
# simmim, ROUNDS rounds of `deno task speed` alternating the ort engine (with its PyTorch twin, whose losses and
# parameter updates are checked against ours) and the tfjs engine on blas; then one table, best round of each.
#
#   bash bench/speed_suite.sh [OUT_DIR=/tmp/speed_suite]
#   env: ROUNDS=3 STEPS=10 WARMUP=3 BATCH=64 THREADS= (every core) METHODS="vit capi mae simmim"
#
# Needs OpenBLAS (libopenblas0-pthread) for blas and python3-torch for the twins. Expected runtime on 2 idle
# cores: about 25 min with the defaults. Every invocation's log is kept in OUT_DIR; the table is also written to
# OUT_DIR/summary.md. Exit status 1 if a twin check failed or a run did not finish.
set -uo pipefail
OUT=${1:-/tmp/speed_suite}
ROUNDS=${ROUNDS:-3} STEPS=${STEPS:-10} WARMUP=${WARMUP:-3} BATCH=${BATCH:-64}
METHODS=${METHODS:-vit capi mae simmim}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
common=(--steps "$STEPS" --warmup "$WARMUP" --batch "$BATCH" --no-profile)
[ -n "${THREADS:-}" ] && common+=(--threads "$THREADS")
status=0
echo "speed suite: $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)')" | tee "$OUT/summary.md"

run() { # run LOG ARGS...: one invocation, its output kept
  local log=$1
  shift
  deno run -A bench/speed.ts "$@" "${common[@]}" >"$log" 2>&1 || { echo "  FAILED (exit $?): $log"; status=1; }
  grep -E "^(ours:|round |check:)" "$log" | sed 's/^/  /'
}

for m in $METHODS; do
  for r in $(seq "$ROUNDS"); do
    echo "$m round $r/$ROUNDS, load $(cut -d' ' -f1 /proc/loadavg)"
    run "$OUT/$m.ort.$r.log" --method "$m" --engine ort --vs-torch
    run "$OUT/$m.blas.$r.log" --method "$m" --engine tfjs --backend blas
  done
done

# Best img/s and lowest CPU-ms/step over the rounds per side, highest peak RSS; ratios of ort against each.
{
  echo
  echo "| method | ort img/s | blas img/s | torch img/s | ort CPU-ms/step | blas CPU-ms/step | torch CPU-ms/step | peak RSS ort / blas / torch (MiB) | ort/blas | ort/torch | per CPU-s: ort/blas | ort/torch | twin check |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for m in $METHODS; do
    awk -v m="$m" '
      function best(a, x) { return (a == "" || x > a) ? x : a }
      function least(a, x) { return (a == "" || x < a) ? x : a }
      FILENAME ~ /\.ort\./ && /^ours:/ { oi = best(oi, $2); oc = least(oc, $(NF - 1)); orss = best(orss, $8) }
      FILENAME ~ /\.blas\./ && /^ours:/ { bi = best(bi, $2); bc = least(bc, $(NF - 1)); brss = best(brss, $8) }
      FILENAME ~ /\.ort\./ && /^round/ {
        match($0, /\) [0-9.]+ img\/s \(/); ti = best(ti, substr($0, RSTART + 2, RLENGTH - 10) + 0)
        match($0, /\([0-9]+ CPU-ms\/step, peak RSS/); tc = least(tc, substr($0, RSTART + 1) + 0)
        match($0, /peak RSS [0-9]+ MiB\);/); trss = best(trss, substr($0, RSTART + 9) + 0)
      }
      FILENAME ~ /\.ort\./ && /^check:/ { checks++; if ($0 ~ /DIFFERENT/) bad++ }
      END {
        ratio = "%.2f"
        printf "| %s | %s | %s | %s | %s | %s | %s | %s / %s / %s | %s | %s | %s | %s | %s |\n", m, oi, bi, ti, oc, bc, tc,
          orss, brss, trss, (bi ? sprintf(ratio, oi / bi) : "-"), (ti ? sprintf(ratio, oi / ti) : "-"),
          (oc && bc ? sprintf(ratio, bc / oc) : "-"), (oc && tc ? sprintf(ratio, tc / oc) : "-"),
          (bad ? bad " of " checks " DIFFERENT" : checks " agree")
      }' "$OUT/$m".*.log
  done
  echo
  echo "ROUNDS=$ROUNDS STEPS=$STEPS WARMUP=$WARMUP BATCH=$BATCH THREADS=${THREADS:-all}; load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee -a "$OUT/summary.md"
grep -l "DIFFERENT" "$OUT"/*.log >/dev/null 2>&1 && status=1
exit $status
