#!/usr/bin/env bash
# CI step (issue 9): the parity fixtures on the `webgpu` backend, on Mesa's software Vulkan.
#
# Installs mesa-vulkan-drivers (lavapipe, .ci/lavapipe.sh) when it can (root or passwordless
# sudo, apt-get present); then asks Deno for a WebGPU adapter. With no adapter it prints why and exits 0
# (a skip, not a pass: the line starts with SKIP). With one, it runs
# `deno task parity --backend webgpu` over model/testdata and its variants, which must print PASS for every
# fixture. Expected runtime on 2 cores: ~1 min install, ~15 s parity.
#
# Call from .ci/run as `bash .ci/webgpu_parity.sh`. DENO overrides the deno command.
set -euo pipefail
cd "$(dirname "$0")/.."
export DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
if [ -z "${DENO:-}" ]; then
  if command -v deno >/dev/null; then DENO=deno; else DENO="npx -y deno"; fi
fi

# shellcheck source=.ci/lavapipe.sh
. .ci/lavapipe.sh

if ensure_lavapipe; then
  # Test the Vulkan path the GPU machines use, not wgpu's OpenGL ES fallback (llvmpipe too).
  export DENO_WEBGPU_BACKEND="${DENO_WEBGPU_BACKEND:-vulkan}"
else
  echo "webgpu CI: going on without it (wgpu may still find an OpenGL ES adapter)"
fi

# Mesa's Vulkan wants a runtime folder; the loader makes one when unset, this keeps logs quiet.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  XDG_RUNTIME_DIR="$(mktemp -d)"
  export XDG_RUNTIME_DIR
fi

if ! adapter="$($DENO run -A model/webgpu/check_adapter.ts 2>&1)"; then
  echo "SKIP webgpu parity: ${adapter}"
  exit 0
fi
echo "webgpu CI: adapter ${adapter}"
$DENO task parity --backend webgpu model/testdata/*.json model/testdata/variants/*.json
