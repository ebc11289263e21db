#!/usr/bin/env bash
# One command from a fresh Debian machine to a result: installs what is missing, builds
# facerec with dlib, and scans face_recognition's sample images with no servers.
# Usage: scripts/demo.sh [extra `facerec scan` flags, e.g. --json]
#        scripts/demo.sh serve [extra `facerec serve` flags]   the same images in the web page
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

"$REPO_ROOT/scripts/setup.sh"
ensure_rust
log "building facerec (release, with dlib)"
cargo build --manifest-path "$REPO_ROOT/Cargo.toml" --release --features dlib --quiet
command=scan
if [[ ${1:-} == serve ]]; then
  command=serve
  shift
fi
log "facerec $command $FACEREC_IMAGES"
exec "$REPO_ROOT/target/release/facerec" "$command" "$FACEREC_IMAGES" "$@"
