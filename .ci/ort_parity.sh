#!/usr/bin/env bash
# CI step (issue 13): the parity fixtures on the ORT engine, on the WebGPU execution provider
# (onnxruntime's Dawn over Mesa's software Vulkan, lavapipe) and on the CPU provider.
#
# 1. `ensure_lavapipe` (.ci/lavapipe.sh): Mesa >= 23 lavapipe (Debian: from <codename>-backports;
#    Dawn refuses Debian 12's Mesa 22.3). Without it: "SKIP ort webgpu parity: <the one line the
#    engine gives>" and exit 0 (a skip, not a pass).
# 2. Every fixture of model/testdata and its variants with `deno task parity --engine ort --ep EP`
#    once the parity CLI has those flags, else `.ci/ort_parity.ts --ep EP` (the same runParity);
#    each must print PASS.
#
# Cost, measured on the 2-core dev machine at load 9-11 (2026-12-01): webgpu 80 s wall / 33 s CPU
# with a cold Mesa shader cache (lavapipe compiles each WGSL pipeline with LLVM: 32-40 s of it is
# capi_tiny alone), 30 s / 10 s warm; cpu 10 s. Mesa keeps compiled shaders in
# $MESA_SHADER_CACHE_DIR (default ~/.cache/mesa_shader_cache, 2.3 MB for all fixtures): a CI that
# can keep that folder between runs (e.g. actions/cache) pays the cold cost once.
#
# Call from .ci/run as `bash .ci/ort_parity.sh`. DENO overrides the deno command; ORT_PARITY_EPS
# (default "webgpu cpu") the providers.
set -euo pipefail
cd "$(dirname "$0")/.."
export DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
if [ -z "${DENO:-}" ]; then
  if command -v deno >/dev/null; then DENO=deno; else DENO="npx -y deno"; fi
fi
# shellcheck source=.ci/lavapipe.sh
. .ci/lavapipe.sh

FIXTURES=(model/testdata/*.json model/testdata/variants/*.json)
if $DENO task parity --help 2>/dev/null | grep -q -- '--ep'; then
  parity() { $DENO task parity --engine ort --ep "$1" "${FIXTURES[@]}"; }
else
  parity() { $DENO run -A .ci/ort_parity.ts --ep "$1" "${FIXTURES[@]}"; }
fi

# Mesa's Vulkan wants a runtime folder; the loader makes one when unset, this keeps logs quiet.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  XDG_RUNTIME_DIR="$(mktemp -d)"
  export XDG_RUNTIME_DIR
fi

status=0
for ep in ${ORT_PARITY_EPS:-webgpu cpu}; do
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
  if parity "$ep" 2> >(grep -v -e 'artificially reduced from' >&2); then
    echo "ort $ep parity: PASS in $((SECONDS - t0)) s"
  else
    echo "ort $ep parity: FAILED"
    status=1
  fi
done
exit $status
