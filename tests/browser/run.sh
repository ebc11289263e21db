#!/usr/bin/env bash
# The page's browser tests: installs what they need if missing (Debian's chromium, the
# pinned playwright-core), then runs page.test.mjs against $BASE, or against the mock
# server (mock-server.mjs, started by the test itself) when BASE is not set.
#
#   tests/browser/run.sh                                  # the mock
#   BASE=http://127.0.0.1:5000 tests/browser/run.sh       # facerec serve / facerec api
#   BASE=... TOKEN=... IMAGES=... SHOTS=... tests/browser/run.sh
#
# Screenshots land in target/browser/ (SHOTS to change it). Idempotent.
set -euo pipefail
cd "$(dirname "$0")"

if [[ ! -x /usr/bin/chromium ]]; then
  echo "installing chromium (apt)" >&2
  if [[ $(id -u) -eq 0 ]]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "node and npm are needed (apt-get install nodejs npm)" >&2
  exit 1
fi
# `npm ci` when the lock file changed since the last install (or nothing is installed).
if [[ ! -f node_modules/.package-lock.json ]] || ! cmp -s package-lock.json node_modules/.facerec-lock; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.facerec-lock
fi

export IMAGES="${IMAGES:-$HOME/.cache/facerec/images}"
if [[ ! -f "$IMAGES/obama.jpg" ]]; then
  echo "sample images missing in $IMAGES: run scripts/setup.sh" >&2
  exit 1
fi
if [[ -n "${BASE:-}" ]]; then echo "testing the page at $BASE" >&2; else echo "testing the page on the mock server" >&2; fi
exec node --test --test-reporter=spec page.test.mjs
