#!/usr/bin/env bash
# Runs every test: formatting, lints, licences, the hermetic suite, the dlib encoder
# against Python's face_recognition, integration tests and fault drills against real
# RabbitMQ and Redis (installed and started here when missing), the bad-input corpus,
# short fuzz runs, the container/Kubernetes lints and the image built and run, and the web
# page in headless Chromium. Stops at the first failure; never
# skips a suite.
# Usage: scripts/test.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

"$REPO_ROOT/scripts/setup.sh"
ensure_rust
"$REPO_ROOT/scripts/services.sh"
"$REPO_ROOT/scripts/python-env.sh"
apt_install openssl
for tool in cargo-fuzz cargo-deny; do
  command -v "$tool" >/dev/null || { log "installing $tool"; cargo install --locked --quiet "$tool"; }
done
export FACEREC_PYTHON="$FACEREC_VENV/bin/python"
export FACEREC_IMAGES

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy (all targets, all features)"
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
log "cargo deny (licences, bans, sources)"
cargo deny --all-features check licenses bans sources
# The advisory database lives on GitHub: checked where it can be fetched, and said plainly
# where it cannot (this CI machine reaches only the package registries).
if timeout 20 git ls-remote https://github.com/rustsec/advisory-db HEAD >/dev/null 2>&1; then
  log "cargo deny (security advisories)"
  cargo deny --all-features check advisories
else
  log "security advisories NOT CHECKED: the RustSec advisory database (github.com/rustsec/advisory-db) is unreachable from here"
fi
log "cargo test: hermetic, dlib parity, services, fault drills, corpus"
cargo test --workspace --all-features
log "fuzzing the message parser and the image decoder, 30 s each"
for target in message decode; do
  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time=30 -rss_limit_mb=2048)
done
log "container and Kubernetes lints"
# The test build's binary has the same shared libraries as the release one: no second build.
FACEREC_BINARY="$REPO_ROOT/target/debug/facerec" "$REPO_ROOT/scripts/lint-deploy.sh"
FACEREC_BINARY="$REPO_ROOT/target/debug/facerec" "$REPO_ROOT/scripts/container-test.sh"
log "the web page in Chromium against facerec serve and facerec api + worker"
FACEREC_BIN="$REPO_ROOT/target/debug/facerec" "$REPO_ROOT/scripts/browser-test.sh"
log "all tests passed"
