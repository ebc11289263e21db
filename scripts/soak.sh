#!/usr/bin/env bash
# Soak run (not in CI): mixed load through a real dlib worker with a fault every minute;
# writes docs/SOAK.md. Usage: scripts/soak.sh [--minutes 30] [--rate 1.5] [--fault-every 60]
# [--out FILE]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
"$REPO_ROOT/scripts/setup.sh"
"$REPO_ROOT/scripts/services.sh"
"$REPO_ROOT/scripts/python-env.sh"
ensure_rust
cargo build --manifest-path "$REPO_ROOT/Cargo.toml" --release --quiet --features dlib
FACEREC_IMAGES="$FACEREC_IMAGES" exec "$FACEREC_VENV/bin/python" "$REPO_ROOT/scripts/soak.py" "$@"
