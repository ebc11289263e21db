#!/usr/bin/env bash
# schemathesis against the OpenAPI document of a running `facerec api`: generated
# requests to every /api/v1 operation; fails on a 5xx other than a documented 503, and on
# any status, content type, header or body the document does not allow for the call.
# POST /api/v1/urls is left out: it fetches the generated URLs, and nothing here may send
# traffic off this machine (its routes are covered by the hermetic SSRF tests).
# GET /api/v1/events is left out too: an endless stream (covered by the hermetic tests).
# POST /api/v1/forget is left out: `facerec api` has no face encoder and answers it 501 by
# design, which the not_a_server_error check counts as a failure (the route and its 501
# are covered by tests/hermetic/api/forget.rs).
# Usage: tests/contract/run.sh BASE_URL   (e.g. http://127.0.0.1:5000; the venv of
# scripts/python-env.sh has schemathesis)
set -euo pipefail
base=${1:?usage: tests/contract/run.sh BASE_URL}
PY=${FACEREC_PYTHON:-$HOME/.cache/facerec/venv/bin/python}
st="$(dirname "$PY")/schemathesis"
[[ -x $st ]] || { echo "no schemathesis in $(dirname "$PY") (scripts/python-env.sh installs it)" >&2; exit 1; }
t0=$SECONDS
# schemathesis keeps a cache of failing cases in the working folder: a scratch one.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
# Each example is one HTTP call; 40 per operation keeps the run well under a minute.
"$st" run "$base/api/v1/openapi.json" \
  --url "$base" \
  --exclude-path /api/v1/urls \
  --exclude-path /api/v1/events \
  --exclude-path /api/v1/forget \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples "${FACEREC_CONTRACT_EXAMPLES:-40}" \
  --seed "${FACEREC_CONTRACT_SEED:-1}" \
  --request-timeout 10 \
  --workers 2 \
  --generation-deterministic \
  --no-color
echo "contract: schemathesis passed in $((SECONDS - t0)) s" >&2
