#!/usr/bin/env bash
# The course's REST client against `facerec api` + a worker (recorded encodings, no dlib):
# tests/interop/test_rest.py runs rest_client.py image/url/match and compares /match with
# what Redis holds. Uses its own exchange, queues and key prefix on the local servers, and
# removes them afterwards.
# Usage: scripts/api-interop.sh   (needs RabbitMQ and Redis on loopback, and the venv of
# scripts/python-env.sh with requests and jsonpickle)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${FACEREC_PYTHON:-$HOME/.cache/facerec/venv/bin/python}
IMAGES=${FACEREC_IMAGES:-$HOME/.cache/facerec/images}
BIN=${FACEREC_BIN:-${CARGO_TARGET_DIR:-target}/debug/facerec}
[[ -x $BIN ]] || cargo build --bin facerec
id="apiinterop$$"
port=$((20000 + RANDOM % 20000))
names=(--exchange "$id" --queue "$id" --routing-key "$id" --dead-letter-queue "$id.dead"
  --redis-key-prefix "$id:" --hostname "$id" --logs-exchange "$id.logs")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$PY" scripts/remove_test_names.py "$id" || true
}
trap cleanup EXIT
FACEREC_API_ALLOW_PRIVATE_URLS=true "$BIN" api --addr "127.0.0.1:$port" "${names[@]}" >"/tmp/$id-api.log" 2>&1 &
pids+=($!)
"$BIN" worker --encodings fixtures/encodings/face_recognition_test_images.json --http-addr off "${names[@]}" \
  >"/tmp/$id-worker.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
"$PY" tests/interop/test_rest.py --host "127.0.0.1:$port" --key-prefix "$id:" --images "$IMAGES" \
  --python "$PY" --timeout 60 --cleanup
# The OpenAPI contract (schemathesis) against the same API and worker.
tests/contract/run.sh "http://127.0.0.1:$port"
