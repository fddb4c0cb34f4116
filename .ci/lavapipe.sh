# shellcheck shell=bash
# Sourced by .ci/run and the .ci/*_parity.sh scripts: `ensure_lavapipe` makes Mesa's software
# Vulkan driver (lavapipe) usable by both WebGPU stacks we run, Deno's wgpu (tfjs `webgpu`) and
# onnxruntime's Dawn (`--ep webgpu`).
#
# Dawn refuses Debian 12's Mesa 22.3 lavapipe ("Vulkan shaderUniform*ArrayDynamicIndexing
# required"; its manifest advertises Vulkan 1.1.230), so on Debian the driver comes from the
# <codename>-backports suite of the same mirror the host already uses (Mesa 25.0.7 on bookworm,
# manifest Vulkan 1.4.305). Elsewhere (Ubuntu) the distribution's own mesa-vulkan-drivers is
# installed. Needs root or passwordless sudo and apt-get; returns 1 (after saying why) otherwise.
# Idempotent: a lavapipe advertising Vulkan >= 1.3 is kept as it is. ~1 min on a fresh machine.

# Vulkan API version a lavapipe manifest advertises ("1.4.305"), or nothing.
lavapipe_api() {
  local f
  for f in /usr/share/vulkan/icd.d/lvp_icd*.json; do
    [ -f "$f" ] && grep -o '"api_version"[^"]*"[0-9.]*"' "$f" | grep -o '[0-9][0-9.]*' && return 0
  done
  return 1
}

lavapipe_ok() {
  local v major minor
  v="$(lavapipe_api)" || return 1
  major="${v%%.*}" minor="${v#*.}" minor="${minor%%.*}"
  [ "$major" -gt 1 ] || { [ "$major" = 1 ] && [ "$minor" -ge 3 ]; }
}

# The first mirror URI serving suite $1 in the apt sources (deb822 .sources files, then sources.list).
debian_mirror() {
  local suite="$1" f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri="$(awk -v s="$suite" 'BEGIN { RS=""; FS="\n" }
      { u=""; ok=0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); u = a[2] }
          if ($i ~ /^Suites:/) { n = split($i, b, /[ \t]+/); for (j = 2; j <= n; j++) if (b[j] == s) ok = 1 }
        }
        if (ok && u != "" && u !~ /security/) { print u; exit } }' "$f")"
    [ -n "$uri" ] && { echo "$uri"; return 0; }
  done
  [ -f /etc/apt/sources.list ] &&
    awk -v s="$suite" '$1 == "deb" && $3 == s && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list | grep .
}

ensure_lavapipe() {
  if lavapipe_ok; then
    echo "lavapipe: Mesa's software Vulkan present (manifest Vulkan $(lavapipe_api))"
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      echo "lavapipe: cannot install mesa-vulkan-drivers (not root, no passwordless sudo)"
      return 1
    fi
  fi
  command -v apt-get >/dev/null || { echo "lavapipe: cannot install mesa-vulkan-drivers (no apt-get)"; return 1; }
  local id="" codename="" target=() mirror
  # shellcheck disable=SC1091
  [ -f /etc/os-release ] && { . /etc/os-release; id="${ID:-}"; codename="${VERSION_CODENAME:-}"; }
  if [ "$id" = debian ] && [ -n "$codename" ]; then
    if mirror="$(debian_mirror "$codename")"; then
      printf 'Types: deb\nURIs: %s\nSuites: %s-backports\nComponents: main\nSigned-By: %s\n' "$mirror" "$codename" \
        /usr/share/keyrings/debian-archive-keyring.gpg | $sudo tee /etc/apt/sources.list.d/mimbench-backports.sources >/dev/null
      target=(-t "$codename-backports")
      echo "lavapipe: Mesa from $codename-backports of $mirror"
    else
      echo "lavapipe: no apt source for '$codename' found; installing the default mesa-vulkan-drivers"
    fi
  fi
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${target[@]}" \
    mesa-vulkan-drivers libvulkan1; } >/tmp/lavapipe_apt.log 2>&1; then
    echo "lavapipe: apt-get install mesa-vulkan-drivers failed (last lines of /tmp/lavapipe_apt.log):"
    tail -n 5 /tmp/lavapipe_apt.log
    return 1
  fi
  if lavapipe_ok; then
    echo "lavapipe: installed (manifest Vulkan $(lavapipe_api))"
  else
    echo "lavapipe: installed, but its manifest advertises Vulkan '$(lavapipe_api)' (< 1.3): Dawn will refuse it"
    return 1
  fi
}
