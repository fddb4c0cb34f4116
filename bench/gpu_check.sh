#!/usr/bin/env bash
# The GPU check on a lent NVIDIA machine (issues 9 and 13): the ORT engine on onnxruntime's WebGPU
# provider (and CUDA provider where it is installed) against PyTorch CUDA fp32 on the same card, in
# one short script.
#
# Two modes:
#   bash bench/gpu_check.sh --pack   HERE, once: puts an xz'd copy of this deno binary and of
#                                    node_modules (tfjs, zod, sharp, onnxruntime-node's linux-x64
#                                    binaries) and the Vulkan loader .debs in .cache/gpu_check/
#                                    (git-ignored, as all of .cache/): 49 MB (deno 31, node_modules
#                                    18), with the 15 MB working tree 61 of the 64 MiB a call carries.
#   bash bench/gpu_check.sh          THERE (no network, no deno): unpacks them, installs the
#                                    loader, then runs the stages below; logs under $OUT.
# Device call: run(command="bash bench/gpu_check.sh", carry=[".cache/gpu_check"], timeout_s=470).
#
# Stages (each logs and goes on when it fails; a stage starts only while time is left):
#   1. adapter: Deno's (check_adapter.ts --require-hardware, Vulkan) and onnxruntime's
#      (ort_speed.ts --check --ep webgpu|cuda: the one-line reason when a provider cannot start);
#   2. PyTorch CUDA fp32 (bench/gpu_torch_speed.py): the reference ViT per batch, ViT-S/16 at 224
#      px batch 256; the methods once a CUDA twin of each exists (`--method` in its --help);
#   3. ORT parity: every fixture on `--ep webgpu` (bench/parity.ts --engine ort --ep webgpu);
#   4. ORT speed (model/ops/ort_speed.ts) per provider: vit, capi, mae, simmim (tiny presets) per
#      batch, and ViT-S/16 at 224 px batch 256; img/s, the bytes a step moves each way and the
#      device state held, peak GPU memory from nvidia-smi sampling (100 ms);
#   5. tfjs `webgpu` (issue 9's route: ops_test, parity, speed) only with GPU_CHECK_TFJS=1.
# Prints a summary table last, with ratio = ORT img/s / PyTorch img/s where both ran.
# Target (issue 13): >= 0.2x PyTorch CUDA, goal 0.5x.
#
# Commands run as `deno run -A --no-check --node-modules-dir=manual FILE` (what `deno task X`
# runs, but offline: deno's "auto" node_modules mode would try to download the packages left out).
# Knobs: SPEED_STEPS (10), SPEED_WARMUP (3), SPEED_BATCHES ("64 256"), SPEED_METHODS ("vit capi mae
# simmim"), ORT_EPS ("webgpu cuda"), GPU_CHECK_BUDGET_S (420: no stage starts after it),
# S16_BATCH (256; 0 skips ViT-S/16), GPU_CHECK_ALLOW_SOFTWARE=1 (accept lavapipe: a dry run on a
# machine without a GPU; then use small batches: lavapipe takes ~70 s per reference-ViT step at
# batch 64).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"

TOOLS=.cache/gpu_check

pack() {
  set -e
  [ "$(uname -m)" = x86_64 ] || { echo "pack: this deno is $(uname -m); the GPU machine needs x86_64" >&2; exit 2; }
  mkdir -p "$TOOLS/debs"
  rm -f "$TOOLS"/*.tmp
  local bin
  bin="$(readlink -f "$(command -v deno)")"
  echo "pack: $bin ($(deno --version | head -1))"
  [ "$TOOLS/deno.xz" -nt "$bin" ] || { xz -T0 -6 -c "$bin" >"$TOOLS/deno.xz.tmp" && mv "$TOOLS/deno.xz.tmp" "$TOOLS/deno.xz"; }
  # What travels must fit 64 MiB with the working tree (15 MB) and deno (31 MB), so node_modules is
  # trimmed to what `deno run --no-check` loads: onnxruntime-node with its linux-x64 binaries only (45 of
  # its 288 MB); tfjs without its browser bundles (UMD, es2017, fesm, minified: Deno loads each
  # package's `main`, dist/*.node.js); no type declarations or source maps; no sharp (only the tfjs
  # speed stage, GPU_CHECK_TFJS=1, reaches it through bench/pretrain.ts: pack with PACK_SHARP=1 then).
  # tar exits 1 when another process touches node_modules meanwhile (deno's setup cache): harmless.
  local rc=0 ortbin='node_modules/.deno/onnxruntime-node@*/node_modules/onnxruntime-node/bin/napi-v6'
  local tfd='node_modules/.deno/@tensorflow+*/node_modules/@tensorflow/*/dist' trim=()
  for p in core converter layers data backend-cpu backend-wasm backend-webgl backend-webgpu; do
    trim+=(--exclude="$tfd/tf-$p.js")
  done
  [ "${PACK_SHARP:-0}" = 1 ] || trim+=(--exclude='node_modules/.deno/@img+*' --exclude='node_modules/.deno/sharp@*')
  tar -cf "$TOOLS/node_modules.tar" --warning=no-file-changed \
    --exclude="$ortbin/darwin" --exclude="$ortbin/win32" --exclude="$ortbin/linux/arm64" \
    --exclude="$tfd/tf.js" --exclude="$tfd/*.es2017.js" --exclude="$tfd/*.es2017.min.js" --exclude="$tfd/*.fesm.js" \
    --exclude="$tfd/*.fesm.min.js" --exclude="$tfd/*.min.js" --exclude="$tfd/*.min.js.html" --exclude="$tfd/miniprogram" \
    "${trim[@]}" --exclude='*.map' --exclude='*.d.ts' node_modules || rc=$?
  [ $rc -le 1 ] || { echo "pack: tar of node_modules failed ($rc)" >&2; exit 1; }
  [ "${PACK_NO_XZ:-0}" = 1 ] || xz -T0 -6 -f "$TOOLS/node_modules.tar"
  # The Vulkan loader, plus EGL/GLES loaders for wgpu's OpenGL ES fallback on the NVIDIA driver.
  local debs="libvulkan1 libegl1 libglvnd0 libgles2"
  rm -f "$TOOLS"/debs/*.deb
  if [ "$(dpkg --print-architecture)" = amd64 ]; then
    (cd "$TOOLS/debs" && apt-get download $debs)
  else # the recipe of /work/.library/device/README.md for other hosts
    local o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    mkdir -p /tmp/amd64/partial && apt-get $o update && (cd "$TOOLS/debs" && apt-get $o download $debs)
  fi
  du -sh "$TOOLS"/* "$TOOLS"/debs/*
  echo "pack: working tree that travels: $(git ls-files -co --exclude-standard -z | du -cb --files0-from=- | tail -1)"
}

if [ "${1:-}" = --pack ]; then pack; exit; fi

OUT="${OUT:-$REPO/gpu_out}"
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
T0=$SECONDS
stage() { echo; echo "=== [$((SECONDS - T0)) s] $*"; }
SUMMARY=()
declare -A IPS # "ort-webgpu vit 64" / "torch vit 64" -> img/s
note() { SUMMARY+=("$*"); echo "$*"; }

stage "setup: deno, node_modules, Vulkan loader"
if [ -f "$TOOLS/deno.xz" ]; then
  DENO=/tmp/deno
  xz -dc "$TOOLS/deno.xz" >"$DENO" 2>/dev/null ||
    python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],"wb"))' "$TOOLS/deno.xz" "$DENO"
  chmod +x "$DENO"
elif command -v deno >/dev/null; then DENO="$(command -v deno)"
else echo "no deno: run 'bash bench/gpu_check.sh --pack' here and carry $TOOLS"; exit 2; fi
"$DENO" --version | head -1
if [ ! -d node_modules/.deno ] && [ -f "$TOOLS/node_modules.tar.xz" ]; then
  tar -xJf "$TOOLS/node_modules.tar.xz" 2>/dev/null ||
    python3 -c 'import tarfile,sys; tarfile.open(sys.argv[1]).extractall(".")' "$TOOLS/node_modules.tar.xz"
fi
[ -d node_modules/.deno ] || echo "no node_modules: carry $TOOLS (node_modules.tar.xz) or node_modules"
# As /work/.library/device/README.md says: unpack the carried loaders over / in every run.
for f in "$TOOLS"/debs/*.deb; do [ -f "$f" ] && dpkg -x "$f" /; done
ldconfig
ldconfig -p | grep 'libvulkan.so.1 ' || echo "no Vulkan loader (libvulkan.so.1): carry $TOOLS"
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

# Whether a stage may start: GPU_CHECK_BUDGET_S seconds after the start, nothing new starts.
time_left() {
  if ((SECONDS - T0 > ${GPU_CHECK_BUDGET_S:-420})); then
    note "$1: skipped (past GPU_CHECK_BUDGET_S=${GPU_CHECK_BUDGET_S:-420} s)"
    return 1
  fi
}
STEPS="${SPEED_STEPS:-10}" WARMUP="${SPEED_WARMUP:-3}" BATCHES="${SPEED_BATCHES:-64 256}"
VIT_S16=(--img 224 --patch 16 --dim 384 --depth 12 --heads 6)

stage "adapter"
# GPU_CHECK_ALLOW_SOFTWARE=1 accepts lavapipe: for trying this script on a machine without a GPU.
REQUIRE=(--require-hardware)
[ "${GPU_CHECK_ALLOW_SOFTWARE:-0}" = 1 ] && REQUIRE=()
if timeout 60 "${RUN[@]}" model/webgpu/check_adapter.ts "${REQUIRE[@]}" >"$OUT/adapter.txt" 2>&1; then
  note "adapter (Deno/wgpu): $(head -c 300 "$OUT/adapter.txt")"
else
  cat "$OUT/adapter.txt"
  echo "--- Vulkan loader's view:"
  VK_LOADER_DEBUG=error,warn,driver timeout 60 "${RUN[@]}" model/webgpu/check_adapter.ts 2>&1 | grep -v '^ ' | tail -25
  note "adapter (Deno/wgpu): FAILED (see above)"
fi
# onnxruntime's own providers: Dawn (webgpu) finds its adapter through the same Vulkan driver.
declare -A EP_OK
for ep in ${ORT_EPS:-webgpu cuda}; do
  if timeout 90 "${RUN[@]}" model/ops/ort_speed.ts --check --ep "$ep" >"$OUT/ort_check_$ep.txt" 2>&1; then
    EP_OK[$ep]=1
  fi
  note "ort $ep: $(grep -m1 "^ort-speed:" "$OUT/ort_check_$ep.txt" | cut -c12-600)"
done

stage "PyTorch CUDA fp32"
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  # One run: torch_run KEY LABEL ARGS... (sets IPS[KEY], notes the result with peak GPU memory).
  torch_run() {
    local key="$1" label="$2" rc ips
    shift 2
    time_left "torch-cuda $label" || return 0
    with_gpu_mem timeout 90 python3 bench/gpu_torch_speed.py --steps "$STEPS" --warmup "$WARMUP" "$@" \
      >"$OUT/torch.tmp" 2>&1
    rc=$?
    { echo "### $label"; cat "$OUT/torch.tmp"; } >>"$OUT/speed_torch.log"
    tail -2 "$OUT/torch.tmp"
    ips="$(python3 -c 'import json,sys; print(round(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["imgPerSec"],1))' "$OUT/torch.tmp" 2>/dev/null)"
    if [ $rc = 0 ] && [ -n "$ips" ]; then
      IPS["torch $key"]=$ips
      note "torch-cuda $label: $ips img/s, peak GPU mem $PEAK_MIB"
    else note "torch-cuda $label: failed rc=$rc: $(tail -1 "$OUT/torch.tmp" | head -c 200)"; fi
  }
  for b in $BATCHES; do torch_run "vit $b" "vit b=$b" --batch "$b"; done
  S16="${S16_BATCH:-256}"
  [ "$S16" = 0 ] || torch_run "vit_s16 $S16" "ViT-S/16 224px b=$S16" "${VIT_S16[@]}" --batch "$S16"
  for m in ${SPEED_METHODS:-vit capi mae simmim}; do
    [ "$m" = vit ] && continue
    if python3 bench/gpu_torch_speed.py --help 2>/dev/null | grep -q -- "--method.*$m"; then
      for b in $BATCHES; do torch_run "$m $b" "$m b=$b" --method "$m" --batch "$b"; done
    else
      note "torch-cuda $m: not measured (bench/gpu_torch_speed.py has no CUDA twin of $m yet)"
    fi
  done
else
  note "torch-cuda: skipped (python3 has no torch with CUDA)"
fi

if [ "${EP_OK[webgpu]:-0}" = 1 ] && time_left "ort webgpu parity"; then
  stage "ORT parity on the webgpu provider"
  timeout 150 "${RUN[@]}" bench/parity.ts --engine ort --ep webgpu model/testdata/*.json model/testdata/variants/*.json \
    >"$OUT/ort_parity.log" 2>&1
  rc=$?
  grep -vE '^\s+(pass|skip)|artificially reduced' "$OUT/ort_parity.log" | tail -14
  while read -r l; do note "ort webgpu parity: $l"; done < <(grep -E '^(PASS|FAIL)' "$OUT/ort_parity.log" | cut -c1-160)
  [ $rc = 0 ] || note "ort webgpu parity: rc=$rc"
fi

# One ORT speed run: ort_run EP KEY LABEL ARGS... (sets IPS["ort-EP KEY"]).
ort_run() {
  local ep="$1" key="$2" label="$3" rc ips log="$OUT/speed_ort_$1.log"
  shift 3
  time_left "ort $ep $label" || return 0
  stage "ORT speed ep=$ep $label"
  with_gpu_mem timeout 120 "${RUN[@]}" model/ops/ort_speed.ts --ep "$ep" --steps "$STEPS" --warmup "$WARMUP" "$@" \
    >"$OUT/ort.tmp" 2>&1
  rc=$?
  { echo "### $label"; grep -v 'artificially reduced' "$OUT/ort.tmp"; } >>"$log"
  grep -E '^(round|first step|speed:|transfers|device state)' "$OUT/ort.tmp"
  ips="$(grep -m1 -oE '^speed: train img/s ours=[0-9.]+' "$OUT/ort.tmp" | grep -oE '[0-9.]+$')"
  if [ $rc = 0 ] && [ -n "$ips" ]; then
    IPS["ort-$ep $key"]=$ips
    note "ort $ep $label: $ips img/s, peak GPU mem $PEAK_MIB; $(grep -m1 '^transfers' "$OUT/ort.tmp" | cut -c21-160)"
  else note "ort $ep $label: failed rc=$rc: $(grep -m1 -E 'ort-speed:|rror' "$OUT/ort.tmp" | head -c 200)"; fi
}
for ep in ${ORT_EPS:-webgpu cuda}; do
  [ "${EP_OK[$ep]:-0}" = 1 ] || continue
  for m in ${SPEED_METHODS:-vit capi mae simmim}; do
    for b in $BATCHES; do ort_run "$ep" "$m $b" "$m b=$b" --method "$m" --batch "$b"; done
  done
  S16="${S16_BATCH:-256}"
  [ "$S16" = 0 ] || ort_run "$ep" "vit_s16 $S16" "ViT-S/16 224px b=$S16" --vit s16 --batch "$S16"
done

if [ "${GPU_CHECK_TFJS:-0}" = 1 ] && time_left "tfjs webgpu"; then
  stage "tfjs webgpu: op agreement, parity, speed (issue 9)"
  timeout 120 "$DENO" test -A --no-check --node-modules-dir=manual model/webgpu/ops_test.ts >"$OUT/ops_test.log" 2>&1
  note "tfjs webgpu ops_test: rc=$?"
  timeout 150 "${RUN[@]}" bench/parity.ts --backend webgpu model/testdata/*.json >"$OUT/parity.log" 2>&1
  while read -r l; do note "tfjs webgpu parity: $l"; done < <(grep -E '^(PASS|FAIL)' "$OUT/parity.log" | cut -c1-160)
  for m in ${SPEED_METHODS:-vit capi mae simmim}; do
    time_left "tfjs webgpu $m" || break
    with_gpu_mem timeout 60 "${RUN[@]}" bench/speed.ts --backend webgpu --method "$m" --batch 64 \
      --steps "$STEPS" --warmup "$WARMUP" --no-profile >"$OUT/speed.tmp" 2>&1
    cat "$OUT/speed.tmp" >>"$OUT/speed_tfjs_webgpu.log"
    ips="$(grep -m1 -oE '^ours: [0-9.]+ img/s' "$OUT/speed.tmp" | grep -oE '[0-9.]+')"
    [ -n "$ips" ] && IPS["tfjs-webgpu $m 64"]=$ips
    note "tfjs webgpu $m b=64: ${ips:-failed} img/s, peak GPU mem $PEAK_MIB"
  done
fi

stage "ratios (ours / PyTorch CUDA fp32, same card and batch)"
for k in "${!IPS[@]}"; do
  case "$k" in torch\ *) continue ;; esac
  eng="${k%% *}" rest="${k#* }" t="${IPS["torch $rest"]:-}"
  [ -n "$t" ] && note "ratio $eng $rest: $(awk "BEGIN { printf \"%.3f\", ${IPS[$k]} / $t }") (${IPS[$k]} / $t img/s)"
done
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv 2>/dev/null | tail -1
stage "summary ($((SECONDS - T0)) s)"
printf '%s\n' "${SUMMARY[@]}" | tee "$OUT/summary.txt"
