#!/usr/bin/env bash
# WebGPU on a lent NVIDIA machine (issue 9): adapter, op agreement, parity, and training speed
# against PyTorch CUDA on the same card, in one short script.
#
# Two modes:
#   bash bench/gpu_check.sh --pack   HERE, once: puts an xz'd copy of this deno binary and of
#                                    node_modules (tfjs, zod, sharp; no onnxruntime) in .tools/,
#                                    the Vulkan loader .deb in .gl/, and git-ignores both
#                                    (.git/info/exclude). ~45 MB to carry; ~3 min on 2 cores.
#   bash bench/gpu_check.sh          THERE (no network, no deno): unpacks them, installs the
#                                    loader, then runs the stages below; logs under $OUT.
# Device call: run(command="bash bench/gpu_check.sh", carry=[".tools", ".gl"], timeout_s=450).
#
# Stages (each logs and goes on when it fails): adapter (check_adapter.ts --require-hardware,
# on Vulkan), ops_test.ts, parity fixtures on webgpu, `bench/speed.ts --backend webgpu` per
# method and batch, bench/gpu_torch_speed.py (same ViT, CUDA fp32) per batch, peak GPU memory
# from nvidia-smi sampling. Prints a summary table last. Budget: ~4-6 minutes.
#
# Commands run as `deno run -A --no-check --node-modules-dir=manual FILE` (what `deno task X`
# runs, but offline: deno's "auto" node_modules mode would try to download the packages left out).
# SPEED_STEPS (20), SPEED_WARMUP (5), SPEED_BATCHES (default "64 256") and SPEED_METHODS (default "vit capi mae simmim") override; webgpu
# speed runs start only in the first GPU_CHECK_SPEED_UNTIL_S (240) seconds, each limited to 60 s.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"

pack() {
  set -e
  [ "$(uname -m)" = x86_64 ] || { echo "pack: this deno is $(uname -m); the GPU machine needs x86_64" >&2; exit 2; }
  mkdir -p .tools .gl .git/info
  rm -f .tools/*.tmp
  for d in /.tools/ /.gl/; do grep -qxF "$d" .git/info/exclude 2>/dev/null || echo "$d" >>.git/info/exclude; done
  local bin
  bin="$(readlink -f "$(command -v deno)")"
  echo "pack: $bin ($(deno --version | head -1))"
  [ .tools/deno.xz -nt "$bin" ] || { xz -T0 -6 -c "$bin" >.tools/deno.xz.tmp && mv .tools/deno.xz.tmp .tools/deno.xz; }
  # onnxruntime-node (290 MB; only the ONNX export imports it) and sharp's musl builds stay behind;
  # sharp itself travels: speed.ts reaches it through pretrain.ts and datasets/decode.ts.
  # tar exits 1 when another process touches node_modules meanwhile (deno's setup cache): harmless.
  local rc=0
  tar -cf .tools/node_modules.tar --warning=no-file-changed \
    --exclude='node_modules/.deno/onnxruntime-node@*' --exclude='node_modules/.deno/onnxruntime-common@*' \
    --exclude='node_modules/.deno/@img+sharp-linuxmusl-*' --exclude='node_modules/.deno/@img+sharp-libvips-linuxmusl-*' \
    --exclude=node_modules/onnxruntime-node --exclude='*.map' node_modules || rc=$?
  [ $rc -le 1 ] || { echo "pack: tar of node_modules failed ($rc)" >&2; exit 1; }
  xz -T0 -6 -f .tools/node_modules.tar
  # The Vulkan loader, plus EGL/GLES loaders for wgpu's OpenGL ES fallback on the NVIDIA driver.
  local debs="libvulkan1 libegl1 libglvnd0 libgles2"
  rm -f .gl/*.deb
  if [ "$(dpkg --print-architecture)" = amd64 ]; then
    (cd .gl && apt-get download $debs)
  else # the recipe of /work/.library/device/README.md for other hosts
    local o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    mkdir -p /tmp/amd64/partial && apt-get $o update && (cd .gl && apt-get $o download $debs)
  fi
  du -sh .tools/* .gl/*
  echo "pack: working tree that travels: $(git ls-files -co --exclude-standard -z | du -cb --files0-from=- | tail -1)"
}

if [ "${1:-}" = --pack ]; then pack; exit; fi

OUT="${OUT:-$REPO/gpu_out}"
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
T0=$SECONDS
stage() { echo; echo "=== [$((SECONDS - T0)) s] $*"; }
SUMMARY=()
declare -A IPS # "webgpu vit 64" / "torch vit 64" -> img/s
note() { SUMMARY+=("$*"); echo "$*"; }

stage "setup: deno, node_modules, Vulkan loader"
if [ -x .tools/deno ]; then DENO="$REPO/.tools/deno"
elif [ -f .tools/deno.xz ]; then
  DENO=/tmp/deno
  xz -dc .tools/deno.xz >"$DENO" 2>/dev/null ||
    python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],"wb"))' .tools/deno.xz "$DENO"
  chmod +x "$DENO"
elif command -v deno >/dev/null; then DENO="$(command -v deno)"
else echo "no deno: run 'bash bench/gpu_check.sh --pack' here and carry .tools"; exit 2; fi
"$DENO" --version | head -1
if [ ! -d node_modules/.deno ] && [ -f .tools/node_modules.tar.xz ]; then
  tar -xJf .tools/node_modules.tar.xz 2>/dev/null ||
    python3 -c 'import tarfile,sys; tarfile.open(sys.argv[1]).extractall(".")' .tools/node_modules.tar.xz
fi
[ -d node_modules/.deno ] || echo "no node_modules: carry .tools (node_modules.tar.xz) or node_modules"
# As /work/.library/device/README.md says: unpack the carried loaders over / in every run.
for f in .gl/*.deb; do [ -f "$f" ] && dpkg -x "$f" /; done
ldconfig
ldconfig -p | grep 'libvulkan.so.1 ' || echo "no Vulkan loader (libvulkan.so.1): carry .gl"
icd=""
for c in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
  /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; do
  [ -f "$c" ] && { icd="$c"; break; }
done
[ -n "$icd" ] && export VK_DRIVER_FILES="$icd"
echo "NVIDIA ICD manifest: ${icd:-none found}"
egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES="$egl"
# The manifests name libGLX_nvidia.so.0 / libEGL_nvidia.so.0 by bare name: make the driver folder findable.
[ -d /usr/local/nvidia/lib64 ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/usr/local/nvidia/lib64"
XDG_RUNTIME_DIR="$(mktemp -d)" && chmod 700 "$XDG_RUNTIME_DIR"
export XDG_RUNTIME_DIR DENO_WEBGPU_BACKEND=vulkan DENO_DIR=/tmp/deno_dir DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
RUN=("$DENO" run -A --no-check --node-modules-dir=manual)
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm --format=csv 2>&1
note "card: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null) date: $(date -u +%F)"

# Run "$@" while sampling GPU memory every 100 ms; sets PEAK_MIB (peak minus the level before).
with_gpu_mem() {
  local base f pid
  base="$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1)"
  f="$(mktemp)"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$f" 2>/dev/null &
  pid=$!
  "$@"
  local rc=$?
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  PEAK_MIB=$(sort -n "$f" | tail -1)
  if [ -n "$PEAK_MIB" ] && [ -n "$base" ]; then PEAK_MIB="+$((PEAK_MIB - base)) MiB"; else PEAK_MIB="n/a"; fi
  rm -f "$f"
  return $rc
}

stage "adapter"
# GPU_CHECK_ALLOW_SOFTWARE=1 accepts lavapipe: for trying this script on a machine without a GPU.
REQUIRE=(--require-hardware)
[ "${GPU_CHECK_ALLOW_SOFTWARE:-0}" = 1 ] && REQUIRE=()
if timeout 60 "${RUN[@]}" model/webgpu/check_adapter.ts "${REQUIRE[@]}" >"$OUT/adapter.txt" 2>&1; then
  note "adapter: $(head -c 300 "$OUT/adapter.txt")"
  GPU_OK=1
elif DENO_WEBGPU_BACKEND=gl timeout 60 "${RUN[@]}" model/webgpu/check_adapter.ts "${REQUIRE[@]}" \
  >"$OUT/adapter_gl.txt" 2>&1; then
  cat "$OUT/adapter.txt"
  export DENO_WEBGPU_BACKEND=gl
  note "adapter: Vulkan failed (above); OpenGL ES through EGL: $(head -c 300 "$OUT/adapter_gl.txt")"
  GPU_OK=1
else
  cat "$OUT/adapter.txt" "$OUT/adapter_gl.txt"
  echo "--- Vulkan loader's view:"
  VK_LOADER_DEBUG=error,warn,driver timeout 60 "${RUN[@]}" model/webgpu/check_adapter.ts 2>&1 | grep -v '^ ' | tail -25
  note "adapter: FAILED (see above); webgpu stages skipped"
  GPU_OK=0
fi

stage "PyTorch CUDA: the same ViT"
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  for b in ${SPEED_BATCHES:-64 256}; do
    with_gpu_mem timeout 60 python3 bench/gpu_torch_speed.py --batch "$b" --steps "${SPEED_STEPS:-20}" \
      --warmup "${SPEED_WARMUP:-5}" >"$OUT/torch.tmp" 2>&1
    rc=$?
    cat "$OUT/torch.tmp" | tee -a "$OUT/speed_torch.log" | tail -3
    ips="$(python3 -c 'import json,sys; print(round(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["imgPerSec"],1))' "$OUT/torch.tmp" 2>/dev/null)"
    if [ $rc = 0 ] && [ -n "$ips" ]; then
      IPS["torch vit $b"]=$ips
      note "torch-cuda vit b=$b: $ips img/s, peak GPU mem $PEAK_MIB"
    else note "torch-cuda vit b=$b: failed rc=$rc"; fi
  done
else
  note "torch-cuda: skipped (python3 has no torch with CUDA)"
fi

if [ "$GPU_OK" = 1 ]; then
  stage "op agreement webgpu vs cpu (model/webgpu/ops_test.ts)"
  timeout 120 "$DENO" test -A --no-check --node-modules-dir=manual model/webgpu/ops_test.ts >"$OUT/ops_test.log" 2>&1
  rc=$?
  grep -E "of bound|passed|failed|error" "$OUT/ops_test.log" | head -40
  note "ops_test: rc=$rc"

  stage "parity fixtures on webgpu"
  timeout 150 "${RUN[@]}" bench/parity.ts --backend webgpu model/testdata/*.json >"$OUT/parity.log" 2>&1
  rc=$?
  grep -vE '^\s+(pass|skip)' "$OUT/parity.log" | tail -20
  while read -r l; do note "parity: $l"; done < <(grep -E '^(PASS|FAIL)' "$OUT/parity.log")
  [ $rc = 0 ] || note "parity: rc=$rc"

  if [ -f bench/speed.ts ]; then
    for m in ${SPEED_METHODS:-vit capi mae simmim}; do
      for b in ${SPEED_BATCHES:-64 256}; do
        if ((SECONDS - T0 > ${GPU_CHECK_SPEED_UNTIL_S:-240})); then
          note "webgpu $m b=$b: skipped (past ${GPU_CHECK_SPEED_UNTIL_S:-240} s)"
          continue
        fi
        stage "speed webgpu method=$m batch=$b"
        log="$OUT/speed_webgpu.log"
        echo "### method=$m batch=$b" >>"$log"
        with_gpu_mem timeout 60 "${RUN[@]}" bench/speed.ts --backend webgpu --method "$m" --batch "$b" \
          --steps "${SPEED_STEPS:-20}" --warmup "${SPEED_WARMUP:-5}" --no-profile >"$OUT/speed.tmp" 2>&1
        rc=$?
        cat "$OUT/speed.tmp" >>"$log"
        tail -4 "$OUT/speed.tmp"
        ips="$(grep -m1 -oE '^ours: [0-9.]+ img/s' "$OUT/speed.tmp" | grep -oE '[0-9.]+')"
        if [ $rc = 0 ] && [ -n "$ips" ]; then
          IPS["webgpu $m $b"]=$ips
          note "webgpu $m b=$b: $ips img/s, peak GPU mem $PEAK_MIB"
        else note "webgpu $m b=$b: failed rc=$rc: $(grep -m1 -iE 'error' "$OUT/speed.tmp" | head -c 200)"; fi
        # An unknown method fails fast; do not try its other batch sizes.
        grep -q "is not timed yet" "$OUT/speed.tmp" && break
      done
    done
  else
    note "speed: bench/speed.ts not in this tree"
  fi
fi

for b in ${SPEED_BATCHES:-64 256}; do
  w="${IPS["webgpu vit $b"]:-}" t="${IPS["torch vit $b"]:-}"
  [ -n "$w" ] && [ -n "$t" ] && note "ratio vit b=$b: webgpu/torch = $(awk "BEGIN { printf \"%.3f\", $w / $t }")"
done
stage "summary ($((SECONDS - T0)) s)"
printf '%s\n' "${SUMMARY[@]}" | tee "$OUT/summary.txt"
