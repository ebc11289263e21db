#!/usr/bin/env bash
# Runs every benchmark in one session and rewrites docs/PERFORMANCE.md.
# Usage: benches/run.sh [--quick] [--skip-build-flags]
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
"$REPO_ROOT/scripts/setup.sh"
"$REPO_ROOT/scripts/services.sh"
"$REPO_ROOT/scripts/python-env.sh"
ensure_rust
export FACEREC_IMAGES
cd "$REPO_ROOT"
cargo build --release --quiet --features dlib
exec "$FACEREC_VENV/bin/python" benches/run_benchmarks.py "$@"
