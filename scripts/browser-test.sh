#!/usr/bin/env bash
# The web page in headless Chromium (tests/browser/) against the real servers, twice:
#   1. `facerec serve` (one process, no servers: dlib, embedded index in a temp folder);
#   2. `facerec api` + `facerec worker` on the local RabbitMQ and Redis (recorded
#      encodings, own exchange/queues/key prefix, removed afterwards);
# then against the test's mock server, for the cases a real server cannot be set up for.
# Screenshots: target/browser/serve/, target/browser/api/ and target/browser/mock/.
# Usage: scripts/browser-test.sh  (FACEREC_BIN: the binary, built with --features dlib)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"
BIN=${FACEREC_BIN:-$REPO_ROOT/target/debug/facerec}
PY=${FACEREC_PYTHON:-$FACEREC_VENV/bin/python}
[[ -x $BIN ]] || die "no facerec binary at $BIN (cargo build --features dlib)"
id="browser$$"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$PY" scripts/remove_test_names.py "$id" || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_ready() { # url log
  for _ in $(seq 300); do
    curl -fsS "$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  cat "$2" >&2
  die "not ready: $1"
}

log "browser tests against facerec serve"
port=$((20000 + RANDOM % 20000))
"$BIN" serve --addr "127.0.0.1:$port" --index "$work/serve.index" >"$work/serve.log" 2>&1 &
pids+=($!)
wait_ready "http://127.0.0.1:$port" "$work/serve.log"
BASE="http://127.0.0.1:$port" SHOTS="$REPO_ROOT/target/browser/serve" tests/browser/run.sh ||
  { cat "$work/serve.log" >&2; exit 1; }

log "browser tests against facerec api + worker"
port=$((20000 + RANDOM % 20000))
names=(--exchange "$id" --queue "$id" --routing-key "$id" --dead-letter-queue "$id.dead"
  --redis-key-prefix "$id:" --hostname "$id" --logs-exchange "$id.logs")
"$BIN" api --addr "127.0.0.1:$port" "${names[@]}" >"$work/api.log" 2>&1 &
pids+=($!)
"$BIN" worker --encodings fixtures/encodings/face_recognition_test_images.json --http-addr off "${names[@]}" \
  >"$work/worker.log" 2>&1 &
pids+=($!)
wait_ready "http://127.0.0.1:$port" "$work/api.log"
BASE="http://127.0.0.1:$port" SHOTS="$REPO_ROOT/target/browser/api" tests/browser/run.sh ||
  { cat "$work/api.log" "$work/worker.log" >&2; exit 1; }
# The token prompt and the missing-thumbnail placeholder need a server the test can set
# up as it likes: they run against the test's mock server (and are skipped above).
log "browser tests against the mock server (token prompt, missing thumbnail)"
SHOTS="$REPO_ROOT/target/browser/mock" tests/browser/run.sh
log "browser tests passed (screenshots in target/browser/)"
