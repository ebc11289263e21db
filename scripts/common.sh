# Shared by the scripts in this folder: paths, and installing what is missing.
# shellcheck shell=bash

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FACEREC_CACHE="${FACEREC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/facerec}"
export FACEREC_MODELS="${FACEREC_MODELS:-$FACEREC_CACHE/models}"
FACEREC_IMAGES="$FACEREC_CACHE/images"
FACEREC_VENV="$FACEREC_CACHE/venv"

# Pinned inputs, checked by SHA-256 (the sdists named in README.md).
MODELS_SDIST="face_recognition_models==0.3.0"
MODELS_SHA256="b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf"
IMAGES_SDIST="face_recognition==1.3.0"
IMAGES_SHA256="5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

sudo_if_needed() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# apt_install PKG...: installs the Debian packages that are not installed yet.
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    sudo_if_needed apt-get update -qq
    DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# ensure_rust: cargo from rustup (Debian's rustc is too old for this crate's edition).
ensure_rust() {
  if [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck disable=SC1091
    source "$HOME/.cargo/env"
  fi
  if ! command -v cargo >/dev/null; then
    log "installing Rust with rustup"
    apt_install curl ca-certificates
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
    # shellcheck disable=SC1091
    source "$HOME/.cargo/env"
  fi
}

# fetch_sdist SPEC SHA256: downloads a PyPI sdist into the cache (once) and checks it.
fetch_sdist() {
  local spec=$1 sha=$2 dir="$FACEREC_CACHE/downloads"
  local name=${spec%%==*} version=${spec##*==}
  local file="$dir/$name-$version.tar.gz"
  mkdir -p "$dir"
  if [[ ! -f $file ]] || ! echo "$sha  $file" | sha256sum -c --quiet - 2>/dev/null; then
    log "downloading $spec from PyPI"
    python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$dir" "$spec"
  fi
  echo "$sha  $file" | sha256sum -c --quiet - || { echo "checksum mismatch for $file" >&2; exit 1; }
  echo "$file"
}
