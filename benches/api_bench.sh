#!/usr/bin/env bash
# The REST API benchmark (issue 13): the course's design (benches/reference/) against
# `facerec api`, side by side in one run (benches/api_bench.py). Installs what it needs:
# wrk (Debian) and a venv with Flask, gunicorn, pika, redis, requests, Pillow, numpy
# ($FACEREC_CACHE/rest-venv); Redis and RabbitMQ must run (scripts/services.sh). Builds
# nothing: the release binary must exist (cargo build --release --features dlib; with
# CARGO_TARGET_DIR set, the binary is looked for there).
# Usage: benches/api_bench.sh [api_bench.py options, e.g. --duration 10 --repeat 3 --markdown FILE]
# shellcheck source=../scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

REST_VENV="$FACEREC_CACHE/rest-venv"
REST_PINS=(flask==3.1.3 gunicorn==23.0.0 pika==1.3.2 redis==5.2.1 requests==2.32.3 pillow==12.3.0 "numpy<3")

apt_install wrk python3-venv
[[ -f $FACEREC_IMAGES/obama.jpg ]] || "$REPO_ROOT/scripts/setup.sh"  # the sample images
"$REPO_ROOT/scripts/services.sh"                                       # Redis and RabbitMQ
stamp="$REST_VENV/.facerec-rest-ready-3"
if [[ ! -f $stamp ]]; then
  log "creating the REST benchmark environment in $REST_VENV"
  python3 -m venv "$REST_VENV"
  "$REST_VENV/bin/pip" install --quiet --disable-pip-version-check "${REST_PINS[@]}"
  touch "$stamp"
fi
cd "$REPO_ROOT" || exit 1
exec "$REST_VENV/bin/python" benches/api_bench.py "$@"
