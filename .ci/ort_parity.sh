#!/usr/bin/env bash
# CI step (issue 13): every parity fixture on the ORT engine on the WebGPU execution provider
# (onnxruntime's Dawn over Mesa's software Vulkan, lavapipe), through the parity CLI:
#   deno task parity --engine ort --ep webgpu model/testdata/*.json model/testdata/variants/*.json \
#     model/testdata/trajectories/*.json (the 50-step replays of issue 16)
# (the same fixtures on the CPU provider run inside `deno task test`, bench/parity_test.ts).
#
# 1. `ensure_lavapipe` (.ci/lavapipe.sh): Mesa >= 23 lavapipe (Debian: from <codename>-backports,
#    Mesa 25 on bookworm; Dawn refuses Debian 12's Mesa 22.3). Without a provider that starts:
#    "SKIP ort webgpu parity: <the one line the engine gives>" and exit 0 (a skip, not a pass).
# 2. The parity CLI must print PASS for every fixture (exit 0).
#
# Cost (2-core dev machine, 2026-12-02): 24 s wall / 13 CPU-s with Mesa's shader cache warm (load
# 6; in .ci/run the test suite's goldens on the provider warm it first), 67 s / 34 CPU-s cold
# (empty MESA_SHADER_CACHE_DIR, load 7-9): lavapipe compiles every WGSL pipeline with LLVM. Mesa keeps
# compiled shaders in $MESA_SHADER_CACHE_DIR (default ~/.cache/mesa_shader_cache, a few MB): a CI
# that keeps that folder between runs (e.g. actions/cache) pays the cold cost once.
#
# Call from .ci/run as `bash .ci/ort_parity.sh`. DENO overrides the deno command; ORT_PARITY_EPS
# (default "webgpu") the providers, e.g. "webgpu cpu".
set -euo pipefail
cd "$(dirname "$0")/.."
export DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
if [ -z "${DENO:-}" ]; then
  if command -v deno >/dev/null; then DENO=deno; else DENO="npx -y deno"; fi
fi
# shellcheck source=.ci/lavapipe.sh
. .ci/lavapipe.sh

FIXTURES=(model/testdata/*.json model/testdata/variants/*.json model/testdata/trajectories/*.json)

# Mesa's Vulkan wants a runtime folder; the loader makes one when unset, this keeps logs quiet.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  XDG_RUNTIME_DIR="$(mktemp -d)"
  export XDG_RUNTIME_DIR
fi

status=0
for ep in ${ORT_PARITY_EPS:-webgpu}; do
  if [ "$ep" = webgpu ]; then
    ensure_lavapipe || echo "ort webgpu CI: going on without a new lavapipe"
    why="$($DENO eval 'import { checkExecutionProvider } from "./model/ops/ort_program.ts";
      try { await checkExecutionProvider("webgpu"); } catch (e) { console.log(e.message); }' 2>/dev/null | tail -1)"
    if [ -n "$why" ]; then
      echo "SKIP ort webgpu parity: $why"
      continue
    fi
  fi
  t0=$SECONDS
  # Dawn's adapter warnings (lavapipe's dynamic-offset limits) are noise here; everything else is kept.
  if $DENO task parity --engine ort --ep "$ep" "${FIXTURES[@]}" 2> >(grep -v -e 'artificially reduced from' >&2); then
    echo "ort $ep parity: PASS in $((SECONDS - t0)) s"
  else
    echo "ort $ep parity: FAILED"
    status=1
  fi
done
exit $status
