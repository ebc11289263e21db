#!/usr/bin/env bash
# A Python virtualenv for the tests: face_recognition 1.3.0 (the reference the encoder is
# checked against, on the dlib-bin wheel), pika + redis (the interop client) and requests +
# jsonpickle (the course's REST client).
# Usage: scripts/python-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

apt_install python3-venv
stamp="$FACEREC_VENV/.facerec-ready-1"
if [[ ! -f $stamp ]]; then
  log "creating Python test environment in $FACEREC_VENV"
  python3 -m venv "$FACEREC_VENV"
  models=$(fetch_sdist "$MODELS_SDIST" "$MODELS_SHA256")
  code=$(fetch_sdist "$IMAGES_SDIST" "$IMAGES_SHA256")
  "$FACEREC_VENV/bin/pip" install --quiet --disable-pip-version-check \
    "dlib-bin==20.0.1.post1" "numpy<3" "pillow<13" "click>=6" "pika==1.3.2" "redis==5.2.1" "$models"
  "$FACEREC_VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps "$code"
  touch "$stamp"
fi
# The REST client's packages (added after the first stamp: installed when missing).
if [[ ! -f $FACEREC_VENV/.facerec-rest-1 ]]; then
  "$FACEREC_VENV/bin/pip" install --quiet --disable-pip-version-check "requests==2.32.3" "jsonpickle==4.0.1"
  touch "$FACEREC_VENV/.facerec-rest-1"
fi
