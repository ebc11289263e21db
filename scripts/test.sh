#!/usr/bin/env bash
# Runs every test: formatting, lints, the hermetic suite, the dlib encoder against Python's
# face_recognition, and the integration tests against real RabbitMQ and Redis (installed
# and started here when missing). Fails on the first failure; never skips a suite.
# Usage: scripts/test.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

"$REPO_ROOT/scripts/setup.sh"
ensure_rust
"$REPO_ROOT/scripts/services.sh"
"$REPO_ROOT/scripts/python-env.sh"
export FACEREC_PYTHON="$FACEREC_VENV/bin/python"
export FACEREC_IMAGES

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy (all targets, all features)"
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
log "cargo test (all features: hermetic, dlib, services)"
cargo test --workspace --all-features
log "all tests passed"
