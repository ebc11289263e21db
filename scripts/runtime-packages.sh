#!/usr/bin/env bash
# Checks that the runtime stage of container/Dockerfile installs every Debian package whose
# shared libraries the facerec binary loads: `ldd` on the binary, `dpkg -S` on each library,
# then apt's own choice of packages for the Dockerfile's `apt-get install` list.
#
#   scripts/runtime-packages.sh [BINARY]     (default: target/release/facerec, built with
#                                             --features dlib when missing or built without)
# Exits 1, naming the package, when the Dockerfile misses one.
source "$(dirname "$0")/common.sh"

DOCKERFILE="$REPO_ROOT/container/Dockerfile"

bin=${1:-}
if [[ -z $bin ]]; then
  bin="$REPO_ROOT/target/release/facerec"
  if [[ ! -x $bin ]] || ! ldd "$bin" | grep -q libdlib; then
    log "building $bin with --features dlib"
    ensure_rust
    (cd "$REPO_ROOT" && cargo build --release --features dlib -p facerec --bin facerec)
  fi
fi
[[ -x $bin ]] || { echo "no executable $bin" >&2; exit 1; }

# The packages after `apt-get install` in the last stage of the Dockerfile.
dockerfile_packages() {
  awk '/^FROM /{stage = ""} {stage = stage $0 "\n"} END {printf "%s", stage}' "$DOCKERFILE" |
    sed -e ':a' -e '/\\$/{N;s/\\\n/ /;ba' -e '}' |
    grep -o 'apt-get install[^&;|]*' | tr -s ' ' '\n' |
    grep -v -e '^-' -e '^$' -e '^apt-get$' -e '^install$' | sort -u
}

# owner LIBRARY: the package that ships the file, under its own path or its resolved one
# (usr-merge moves /lib to /usr/lib; alternatives symlink through /etc/alternatives).
owner() {
  local path
  for path in "$1" "${1#/usr}" "$(readlink -f "$1")" "$(readlink -f "$1" | sed 's|^/usr||')"; do
    dpkg -S "$path" 2>/dev/null | head -n1 | cut -d: -f1 | cut -d, -f1 | grep . && return
  done
  return 1
}

# apt_closure PKG...: the packages apt installs for PKG... on an empty system (same archive
# as the image: bookworm), alternatives resolved the way apt resolves them, one per line.
apt_closure() {
  local empty_status
  empty_status=$(mktemp)
  apt-get install -s -qq --no-install-recommends -o Dir::State::status="$empty_status" "$@" |
    awk '/^Inst /{print $2}'
  rm -f "$empty_status"
}

mapfile -t wanted < <(dockerfile_packages)
((${#wanted[@]})) || { echo "found no apt-get install in the runtime stage of $DOCKERFILE" >&2; exit 1; }
log "runtime stage installs: ${wanted[*]}"

if ! apt-cache show libdlib19.1 >/dev/null 2>&1; then sudo_if_needed apt-get update -qq; fi
# debian:bookworm-slim holds the Essential packages, apt, and what they depend on (libc6,
# libgcc-s1, libstdc++6, zlib1g, ...: Debian gives these Priority optional, not required).
mapfile -t essential < <(dpkg-query -W -f='${Essential} ${Package}\n' | awk '$1 == "yes" {print $2}')
in_slim=" $(apt_closure "${essential[@]}" apt | tr '\n' ' ') "
installed=" $(apt_closure "${wanted[@]}" | tr '\n' ' ') "

missing=()
while read -r lib path; do
  pkg=$(owner "$path") || { echo "no Debian package owns $path ($lib)" >&2; exit 1; }
  pkg=${pkg%%:*}
  if [[ $in_slim == *" $pkg "* ]]; then status="in debian:bookworm-slim"
  elif [[ $installed == *" $pkg "* ]]; then status="with the Dockerfile's packages"
  else status="MISSING"; missing+=("$pkg"); fi
  printf '  %-28s %-22s %s\n' "$lib" "$pkg" "$status"
done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3} $1 ~ /^\// {print $1, $1}')

if ldd "$bin" | grep -q 'not found'; then
  ldd "$bin" | grep 'not found' >&2
  echo "$bin needs libraries that are not installed here" >&2
  exit 1
fi
if ((${#missing[@]})); then
  echo "container/Dockerfile misses runtime package(s): $(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')" >&2
  echo "add them to the apt-get install line of its runtime stage" >&2
  exit 1
fi
log "runtime packages OK: every library of $(basename "$bin") comes with the image"
