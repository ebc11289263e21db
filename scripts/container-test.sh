#!/usr/bin/env bash
# Builds the container image from container/Dockerfile with podman and tests it: the
# worker from the image (read-only root, uid 10001, host network) against this machine's
# RabbitMQ and Redis, on queues, exchanges and a Redis key prefix of its own; its results
# in databases 1-4 against `facerec scan --json` of the same images (and its encodings
# against the committed recording); its probes; SIGTERM; a start without models. Prints
# the image size and its layers. Idempotent; a warm run only rebuilds the binary's layer.
#
#   scripts/container-test.sh        (as root: rootful podman, debootstrap)
#
# Settings (environment):
#   FACEREC_BINARY           the host-built facerec (--features dlib) that submits the
#                            images, computes the expected results and, in runtime builds,
#                            goes into the image [default: $CARGO_TARGET_DIR or target/,
#                            release/facerec, built when missing]
#   FACEREC_CONTAINER_CACHE  podman's configuration and storage [$FACEREC_CACHE/containers]:
#                            a fresh folder gives a cold run (base image made again)
#   FACEREC_CONTAINER_IMAGE  the tag built and tested [localhost/facerec:container-test]
#
# Two ways to build, chosen by FACEREC_CONTAINER_BUILD:
#   full     the whole multi-stage build; podman pulls rust:1-bookworm,
#            python:3.11-slim-bookworm and debian:bookworm-slim when missing.
#   runtime  only the runtime stage, unchanged: the `build` and `models` stages are
#            replaced by folders (--build-context) holding the host-built binary
#            (FACEREC_BINARY, stripped as the build stage strips it) and the models
#            (FACEREC_MODELS, checked against the SHA-256s the Dockerfile pins), on a
#            debian:bookworm-slim made here with debootstrap when the official one is
#            not in podman's storage. No registry is contacted (--pull=never).
#   auto     (default) full when the three base images are already in podman's storage,
#            else runtime: whether a registry can be reached is not probed, because
#            a host with no registry access must not send traffic to one.
# Podman's configuration (runc, cgroupfs, file events, ulimits, overlay storage) and its
# storage live under FACEREC_CONTAINER_CACHE, never in /etc; the base image is remade
# only when its recipe (the debootstrap parameters and make_base_rootfs) changes.
#
# Checks are one function each (check_*), run in the order of CHECKS below; the first
# failure stops the run with the check's name and the logs of the container involved.
# Containers, queues, exchanges and Redis keys made by a run are removed when it ends.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [[ $(id -u) -ne 0 ]]; then
  exec sudo --preserve-env "$0" "$@"
fi

T0=$SECONDS
DOCKERFILE="$REPO_ROOT/container/Dockerfile"
BINARY=${FACEREC_BINARY:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/facerec}
IMAGE=${FACEREC_CONTAINER_IMAGE:-localhost/facerec:container-test}
BUILD_MODE=${FACEREC_CONTAINER_BUILD:-auto}
CDIR=${FACEREC_CONTAINER_CACHE:-$FACEREC_CACHE/containers}
DRIVER=${FACEREC_CONTAINER_STORAGE_DRIVER:-overlay}
SAMPLES=(obama.jpg obama2.jpg obama3.jpg biden.jpg 32bit.png obama_partial_face.jpg obama_partial_face2.jpg)
export RABBITMQ_PORT=${RABBITMQ_PORT:-5672} REDIS_PORT=${REDIS_PORT:-6379}

# Base image made with debootstrap (runtime builds when the official one is absent).
BASE_IMAGE=localhost/debian:bookworm-slim
BASE_SUITE=bookworm
BASE_MIRROR=http://deb.debian.org/debian
OFFICIAL_BASES=(docker.io/library/rust:1-bookworm docker.io/library/python:3.11-slim-bookworm
  docker.io/library/debian:bookworm-slim)

# This run's names: nothing it creates can clash with the seed's names or another run's.
RUN="facerec-ct-$$-$RANDOM"
NAME_FLAGS=(--exchange "$RUN.toWorker" --queue "$RUN.toWorker" --routing-key "$RUN"
  --dead-letter-queue "$RUN.toWorker.dead" --logs-exchange "$RUN.logs")
KEY_PREFIX="$RUN:"
LABEL=facerec-container-test # value: the PID of the run that made the container
WORK=$(mktemp -d)
CONTAINERS=()   # made by this run, removed at exit
CURRENT=setup   # the step or check running, named when it fails
FAIL_LOGS=""    # the container whose logs explain a failure of the current check

# ---------------------------------------------------------------------------------------
# Reporting, failure and cleanup

say() { printf '    %s\n' "$*" >&2; }
fail() {
  printf '\033[1;31mFAILED: %s: %s\033[0m\n' "$CURRENT" "$*" >&2
  exit 1
}
step() {
  CURRENT=$1
  FAIL_LOGS=""
  STEP_T0=$SECONDS
  log "$1"
}
took() { say "($((SECONDS - STEP_T0)) s)"; }

on_exit() {
  local rc=$?
  set +e
  if ((rc != 0)); then
    printf '\033[1;31mcontainer test FAILED in %s (exit %s)\033[0m\n' "$CURRENT" "$rc" >&2
    if [[ -n $FAIL_LOGS ]] && podman container exists "$FAIL_LOGS" 2>/dev/null; then
      echo "---- logs of container $FAIL_LOGS ----" >&2
      podman logs "$FAIL_LOGS" 2>&1 | tail -n 60 >&2
      echo "---- end of logs ----" >&2
    fi
  fi
  [[ -z ${SCAN_PID:-} ]] || kill "$SCAN_PID" 2>/dev/null
  for c in "${CONTAINERS[@]}"; do podman rm -f -t 0 "$c" >/dev/null 2>&1; done
  if [[ -x ${PY:-} ]]; then
    "$PY" "$WORK/helper.py" cleanup "$KEY_PREFIX" "$RUN.toWorker" "$RUN.toWorker.dead" \
      -- "$RUN.toWorker" "$RUN.logs" || echo "cleanup of queues and keys failed" >&2
  fi
  rm -rf "$WORK"
  log "container test: $([[ $rc -eq 0 ]] && echo passed || echo FAILED) in $((SECONDS - T0)) s"
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------
# Podman, configured under $CDIR

setup_podman() {
  apt_install podman runc debootstrap curl binutils ca-certificates
  mkdir -p "$CDIR"
  # runc: crun fails on this kind of host (setrlimit RLIMIT_NOFILE, hybrid cgroups).
  cat >"$CDIR/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  # One storage folder per driver: podman refuses a storage made by another driver. The
  # runroot (locks, mounts) belongs to one storage: named after it.
  local runroot
  runroot="/run/facerec-containers/$(sha256sum <<<"$CDIR/storage-$DRIVER" | cut -c1-12)"
  cat >"$CDIR/storage.conf" <<EOF
[storage]
driver = "$DRIVER"
graphroot = "$CDIR/storage-$DRIVER"
runroot = "$runroot"
EOF
  # Short names (FROM debian:bookworm-slim) resolve to local images first, then Docker Hub.
  cat >"$CDIR/registries.conf" <<'EOF'
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
EOF
  export CONTAINERS_CONF="$CDIR/containers.conf" CONTAINERS_STORAGE_CONF="$CDIR/storage.conf"
  export CONTAINERS_REGISTRIES_CONF="$CDIR/registries.conf"
  podman info --format '{{.Store.GraphDriverName}} storage, runtime {{.Host.OCIRuntime.Name}}' >&2 ||
    fail "podman does not work with $CDIR/containers.conf"
  # Containers left by runs that were killed (their PID is gone).
  local c pid
  while read -r c pid; do
    if [[ -n $c ]] && ! kill -0 "$pid" 2>/dev/null; then podman rm -f -t 0 "$c" >/dev/null; fi
  done < <(podman ps -a --filter "label=$LABEL" --format "{{.Names}} {{index .Labels \"$LABEL\"}}")
}

# A Python with pika and redis, to read the databases and delete what this run made.
setup_python() {
  if "$FACEREC_VENV/bin/python" -c 'import pika, redis' 2>/dev/null; then
    PY="$FACEREC_VENV/bin/python"
  else
    local venv="$CDIR/venv" tools="pika==1.3.2 redis==5.2.1"
    if [[ $(cat "$venv/.stamp" 2>/dev/null) != "$tools" ]]; then
      python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
      rm -rf "$venv"
      python3 -m venv "$venv"
      # shellcheck disable=SC2086
      "$venv/bin/pip" install --quiet --disable-pip-version-check $tools
      echo "$tools" >"$venv/.stamp"
    fi
    PY="$venv/bin/python"
  fi
  write_helper "$WORK/helper.py"
}

# ---------------------------------------------------------------------------------------
# The base image: debian:bookworm-slim made with debootstrap, the way the official one is
# made (minbase, docs/man pages/locales excluded, apt caches and lists removed).

make_base_rootfs() {
  local dir=$1
  debootstrap --variant=minbase "$BASE_SUITE" "$dir" "$BASE_MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -n 20 "$WORK/debootstrap.log" >&2; fail "debootstrap failed"; }
  rm -f "$dir/etc/apt/sources.list"
  cat >"$dir/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $BASE_MIRROR
Suites: $BASE_SUITE $BASE_SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${BASE_MIRROR%/debian}/debian-security
Suites: $BASE_SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # What "slim" means: later installs skip these too.
  cat >"$dir/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
  find "$dir/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$dir/usr/share/locale" -mindepth 1 ! -type d ! -name locale.alias -delete
  rm -rf "$dir"/usr/share/{groff,info,linda,lintian/overrides,man}/*
  find "$dir/usr/share/doc" "$dir/usr/share/locale" -mindepth 1 -type d -empty -delete
  cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$dir/etc/apt/apt.conf.d/docker-no-languages"
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod 0755 "$dir/usr/sbin/policy-rc.d"
  chroot "$dir" apt-get clean
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/debconf/*-old \
    "$dir"/var/log/* "$dir"/tmp/* "$dir/etc/hostname" "$dir/etc/resolv.conf"
  : >"$dir/etc/machine-id"
}

ensure_base() {
  if podman image exists docker.io/library/debian:bookworm-slim; then
    say "base: docker.io/library/debian:bookworm-slim (official, already pulled)"
    return
  fi
  local key
  key=$({ declare -f make_base_rootfs; echo "$BASE_SUITE $BASE_MIRROR minbase"; } | sha256sum | cut -c1-16)
  if [[ $(podman image inspect --format '{{index .Config.Labels "facerec.base-recipe"}}' \
    "$BASE_IMAGE" 2>/dev/null) == "$key" ]]; then
    say "base: $BASE_IMAGE (recipe $key, made earlier)"
    return
  fi
  say "base: making $BASE_IMAGE with debootstrap --variant=minbase $BASE_SUITE (recipe $key)"
  local dir="$CDIR/base-rootfs"
  rm -rf "$dir"
  make_base_rootfs "$dir"
  local packages
  # shellcheck disable=SC2016
  packages=$(chroot "$dir" dpkg-query -W -f '${Package} ${Version}\n' | sort)
  tar -C "$dir" --numeric-owner -c . |
    podman import --quiet \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' \
      --change "LABEL facerec.base-recipe=$key" \
      --change "LABEL facerec.base-packages=$(sha256sum <<<"$packages" | cut -c1-16)" \
      - "$BASE_IMAGE" >/dev/null
  rm -rf "$dir"
  say "base: $(wc -l <<<"$packages") packages, $(podman image inspect --format '{{.Size}}' "$BASE_IMAGE" |
    numfmt --to=si --suffix=B)"
}

# ---------------------------------------------------------------------------------------
# The image

# The model files and SHA-256s pinned by the Dockerfile's models stage, "sha  file" lines.
pinned_models() {
  grep -oE '^ +[0-9a-f]{64} [a-z0-9_]+\.dat' "$DOCKERFILE" | awk '{print $1 "  " $2}'
}

choose_build_mode() {
  if [[ $BUILD_MODE == auto ]]; then
    BUILD_MODE=full
    for image in "${OFFICIAL_BASES[@]}"; do
      podman image exists "$image" || BUILD_MODE=runtime
    done
  fi
  [[ $BUILD_MODE == full || $BUILD_MODE == runtime ]] ||
    fail "FACEREC_CONTAINER_BUILD must be auto, full or runtime, not $BUILD_MODE"
}

# The host's release binary: it computes the expected results and submits the images
# (and is the image's binary in runtime builds). Built when missing, as runtime-packages.sh does.
ensure_binary() {
  # grep reads all of ldd's output: with -q, ldd could die of SIGPIPE and fail the pipe.
  if [[ ! -x $BINARY ]] || ! ldd "$BINARY" | grep libdlib >/dev/null; then
    [[ -z ${FACEREC_BINARY:-} || -x $BINARY ]] || fail "FACEREC_BINARY: no executable $BINARY"
    [[ -z ${FACEREC_BINARY:-} ]] || fail "FACEREC_BINARY: $BINARY is not a facerec built with --features dlib"
    log "building $BINARY with --features dlib"
    ensure_rust
    (cd "$REPO_ROOT" && cargo build --release --features dlib -p facerec --bin facerec)
  fi
}

# The folders that stand in for the `build` and `models` stages (this run's own: runs
# never share them). The layer cache is keyed by content, so unchanged files hit it.
stage_contexts() {
  local ctx="$WORK/context"
  mkdir -p "$ctx/build/out" "$ctx/models/out"
  strip --strip-debug -o "$ctx/build/out/facerec" "$BINARY"
  chmod 0755 "$ctx/build/out/facerec"
  (cd "$FACEREC_MODELS" && sha256sum --quiet -c "$WORK/models.sha256") ||
    fail "models in $FACEREC_MODELS do not match the SHA-256s pinned in $DOCKERFILE (scripts/setup.sh fetches them)"
  local model
  while read -r _ model; do
    install -m 0644 "$FACEREC_MODELS/$model" "$ctx/models/out/$model"
  done <"$WORK/models.sha256"
  say "binary: $(numfmt --to=si --suffix=B "$(stat -c %s "$BINARY")") -> stripped $(numfmt --to=si \
    --suffix=B "$(stat -c %s "$ctx/build/out/facerec")"); models: $(du -s --si "$ctx/models/out" | cut -f1)B"
  CONTEXT_FLAGS=(--pull=never --build-context "build=$ctx/build" --build-context "models=$ctx/models")
}

build_image() {
  local version revision
  revision=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  version=$(git -C "$REPO_ROOT" describe --always --dirty 2>/dev/null || echo 0.0.0-dev)
  # Docker's image format: in OCI format podman ignores SHELL (the models stage's pipefail).
  local args=(--format docker --network host --layers -f "$DOCKERFILE" -t "$IMAGE"
    --build-arg "VERSION=$version" --build-arg "REVISION=$revision")
  [[ -z ${FACEREC_SOURCE_URL:-} ]] || args+=(--build-arg "SOURCE_URL=$FACEREC_SOURCE_URL")
  if [[ $BUILD_MODE == full ]]; then
    args+=(--pull=missing)
  else
    args+=("${CONTEXT_FLAGS[@]}")
  fi
  if ! podman build "${args[@]}" "$REPO_ROOT" >"$WORK/build.log" 2>&1; then
    tail -n 40 "$WORK/build.log" >&2
    fail "podman build failed (last lines above)"
  fi
  say "$(grep -c -- '--> Using cache' "$WORK/build.log" || true) steps from the layer cache"
  # Earlier builds' layers that no tag points to any more (not in full builds: there the
  # untagged last layer of the `build` stage is the cache of the Rust compilation).
  [[ $BUILD_MODE == full ]] || podman image prune -f >/dev/null
}

report_size() {
  local size
  size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
  say "image $IMAGE: $(numfmt --to=si --suffix=B "$size") ($size bytes, uncompressed)"
  say "layers (podman history, bottom first, empty ones left out):"
  podman history --format json "$IMAGE" | "$PY" "$WORK/helper.py" layers >&2
}

# ---------------------------------------------------------------------------------------
# Containers

free_port() {
  local port
  for _ in $(seq 50); do
    port=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
  fail "no free port"
}

# start_container NAME PODMAN-RUN-ARGS... IMAGE COMMAND...: detached, labelled, removed at exit.
start_container() {
  local name=$1
  shift
  CONTAINERS+=("$name")
  podman run -d --pull=never --name "$name" --label "$LABEL=$$" "$@" >/dev/null
}

# The flags every worker container runs with: what k8s/ asks of the pod, on the host network.
SECURE_FLAGS=(--read-only --network host --cap-drop ALL --security-opt no-new-privileges)

http_get() { curl -fsS --max-time 5 "http://127.0.0.1:$HEALTH_PORT$1"; }

wait_ready() {
  local deadline=$((SECONDS + ${1:-90}))
  until http_get /readyz >/dev/null 2>&1; do
    [[ $(podman inspect --format '{{.State.Running}}' "$WORKER") == true ]] ||
      fail "the worker container exited (code $(podman inspect --format '{{.State.ExitCode}}' "$WORKER")) before it was ready: $(podman logs "$WORKER" 2>&1 | tail -n 1)"
    ((SECONDS < deadline)) || fail "/readyz not 200 after ${1:-90} s: $(http_get /readyz 2>&1)"
    sleep 0.5
  done
}

# ---------------------------------------------------------------------------------------
# The checks, in order

CHECKS=(
  check_build_context
  check_image_config
  check_image_contents
  check_worker_starts
  check_worker_probes
  check_worker_results
  check_api
  check_worker_stops_on_sigterm
  check_start_without_models
)

# What the build stage gets through .dockerignore is a complete workspace: cargo reads its
# manifests and lock file (--locked) with nothing missing. Runs in runtime builds too,
# where the build stage itself cannot run.
check_build_context() {
  if ! command -v cargo >/dev/null; then
    # shellcheck disable=SC1091
    [[ -f $HOME/.cargo/env ]] && source "$HOME/.cargo/env"
  fi
  command -v cargo >/dev/null || { say "SKIPPED: no cargo here"; return; }
  printf 'FROM scratch\nCOPY . /\n' >"$WORK/Context.Dockerfile"
  podman build --quiet --pull=never --network none -f "$WORK/Context.Dockerfile" \
    --iidfile "$WORK/context.iid" --output "type=local,dest=$WORK/build-context" "$REPO_ROOT" >/dev/null ||
    fail "could not copy the build context through .dockerignore"
  podman rmi "$(cat "$WORK/context.iid")" >/dev/null
  # Only the host's dependencies: the registry cache has no Windows-only crates.
  local err host
  host=$(rustc -vV | sed -n 's/^host: //p')
  err=$(cd "$WORK/build-context" &&
    cargo metadata --locked --offline --format-version 1 --filter-platform "$host" 2>&1 >/dev/null) ||
    fail "the build context (.dockerignore) is not a complete workspace: $err"
  say "$(find "$WORK/build-context" -type f | wc -l) files; cargo reads every manifest and Cargo.lock (--locked)"
}

# Labels, user, ports, entrypoint and model path as the Dockerfile declares them.
check_image_config() {
  local f='{{.Config.User}}|{{json .Config.ExposedPorts}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}'
  local got
  got=$(podman image inspect --format "$f" "$IMAGE")
  say "user|ports|entrypoint|cmd: $got"
  [[ $got == '10001:10001|'* ]] || fail "image user is not 10001:10001: $got"
  [[ $got == *'"8080/tcp"'* ]] || fail "image does not expose 8080 (/healthz, /readyz, /metrics): $got"
  [[ $got == *'"5000/tcp"'* ]] || fail "image does not expose 5000 (facerec api): $got"
  [[ $got == *'|["facerec"]|["worker"]' ]] || fail "entrypoint/cmd are not facerec worker: $got"
  local label value
  for label in title description source licenses version revision; do
    value=$(podman image inspect --format "{{index .Config.Labels \"org.opencontainers.image.$label\"}}" "$IMAGE")
    [[ -n $value && $value != '<no value>' ]] || fail "label org.opencontainers.image.$label is not set"
  done
  say "version label: $(podman image inspect --format '{{index .Config.Labels "org.opencontainers.image.version"}}' "$IMAGE")"
}

# Every shared library found; no compiler, headers or second model copy; models as pinned.
check_image_contents() {
  local out
  out=$(podman run --rm --pull=never --label "$LABEL=$$" --read-only --network none --user 0 --entrypoint /bin/sh \
    -v "$WORK/models.sha256:/tmp/models.sha256:ro" "$IMAGE" -c '
      missing=$(ldd /usr/local/bin/facerec | grep "not found")
      [ -z "$missing" ] || { echo "missing shared libraries of /usr/local/bin/facerec (scripts/runtime-packages.sh names their packages):"; echo "$missing"; exit 1; }
      for tool in cc gcc g++ c++ clang rustc cargo ld as make pkg-config; do
        command -v "$tool" >/dev/null && { echo "build tool in the image: $(command -v "$tool")"; exit 1; }
      done
      headers=$(find /usr/include /usr/local/include -type f 2>/dev/null | head -n 3)
      [ -z "$headers" ] || { echo "C headers in the image: $headers ..."; exit 1; }
      dlib_data=$(find /usr/share/dlib -type f 2>/dev/null | head -n 3)
      [ -z "$dlib_data" ] || { echo "libdlib-data files were installed: $dlib_data"; exit 1; }
      models=$(find / -xdev -type f \( -name "shape_predictor_*" -o -name "dlib_face_*" -o -name "mmod_*" \) | sort | tr "\n" " ")
      [ "$models" = "$(awk "{print \"/usr/share/facerec/models/\" \$2}" /tmp/models.sha256 | sort | tr "\n" " ")" ] ||
        { echo "model files are not exactly the four in /usr/share/facerec/models: $models"; exit 1; }
      cd /usr/share/facerec/models && sha256sum --quiet -c /tmp/models.sha256 || { echo "models differ from the pins"; exit 1; }
      /usr/local/bin/facerec --version' 2>&1) || fail "$out$(missing_packages "$out")"
  say "all libraries found, no build tools or headers, models only in /usr/share/facerec/models ($out)"
}

# missing_packages LDD-OUTPUT: for each "lib => not found", the Debian package that ships
# it on this host (where the binary was built), as a line telling what to add. dpkg knows
# a file under one of its paths: as linked, resolved, with or without usr-merge's /usr.
missing_packages() {
  local lib path candidate pkg pkgs=()
  while read -r lib; do
    path=$(ldd "$BINARY" | awk -v l="$lib" '$1 == l {print $3}')
    pkg="?"
    for candidate in "$path" "${path#/usr}" "$(readlink -f "$path")" "$(readlink -f "$path" | sed 's|^/usr||')"; do
      if [[ -n $candidate ]] && pkg=$(dpkg -S "$candidate" 2>/dev/null | head -n 1 | cut -d: -f1); then break; fi
      pkg="?"
    done
    pkgs+=("$pkg")
  done < <(awk '/=> not found/ {print $1}' <<<"$1")
  ((${#pkgs[@]})) || return 0
  printf '\nadd %s (the package of those libraries on this host) to the apt-get install line of the runtime stage of %s' \
    "${pkgs[*]}" "$DOCKERFILE"
}

check_worker_starts() {
  HEALTH_PORT=$(free_port)
  WORKER="$RUN-worker"
  FAIL_LOGS=$WORKER
  start_container "$WORKER" "${SECURE_FLAGS[@]}" \
    -e FACEREC_HTTP_ADDR="127.0.0.1:$HEALTH_PORT" -e FACEREC_HOSTNAME="$RUN" \
    -e RABBITMQ_HOST=127.0.0.1 -e RABBITMQ_PORT="$RABBITMQ_PORT" \
    -e REDIS_HOST=127.0.0.1 -e REDIS_PORT="$REDIS_PORT" \
    "$IMAGE" worker "${NAME_FLAGS[@]}" --redis-key-prefix "$KEY_PREFIX"
  wait_ready 90
  local pid uid
  pid=$(podman inspect --format '{{.State.Pid}}' "$WORKER")
  uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
  [[ $uid == 10001 ]] || fail "the worker runs as uid $uid, not 10001"
  [[ $(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$WORKER") == true ]] ||
    fail "the root filesystem is not read-only"
  say "ready on 127.0.0.1:$HEALTH_PORT as uid $uid with a read-only root"
}

check_worker_probes() {
  FAIL_LOGS=$WORKER
  local body
  body=$(http_get /healthz) || fail "/healthz: $body"
  body=$(http_get /readyz) || fail "/readyz: $body"
  body=$(http_get /metrics) || fail "/metrics failed"
  local series
  for series in facerec_messages_total facerec_in_flight facerec_index_faces; do
    grep -q "^$series" <<<"$body" || fail "/metrics has no $series"
  done
  say "/healthz 200, /readyz 200, /metrics $(grep -c '^facerec_' <<<"$body") facerec_ samples"
}

# The seven samples through the container's worker; databases 1-4 against `facerec scan`.
check_worker_results() {
  FAIL_LOGS=$WORKER
  wait "$SCAN_PID" || { cat "$WORK/scan.err" >&2; fail "facerec scan --json (the samples in $FACEREC_IMAGES) failed"; }
  (cd "$FACEREC_IMAGES" && "$BINARY" submit "${NAME_FLAGS[@]}" "${SAMPLES[@]}" \
    --rabbitmq-host 127.0.0.1 --rabbitmq-port "$RABBITMQ_PORT") >/dev/null 2>"$WORK/submit.err" ||
    { cat "$WORK/submit.err" >&2; fail "facerec submit failed"; }
  "$PY" "$WORK/helper.py" results "$WORK/scan.json" "$REPO_ROOT/fixtures/encodings/face_recognition_test_images.json" \
    "$KEY_PREFIX" "$RUN.toWorker.dead" 120 >&2 ||
    fail "databases 1-4 differ from facerec scan --json or the recorded encodings (MISMATCH lines above)"
}

# `facerec api` from the image, hardened like the worker and on the same names: POST
# /scan/image (the course's route) with a sample answers its SHA-256, GET /match answers
# exactly the names databases 2 and 4 hold for it (after check_worker_results stored the
# samples), and `podman stop` ends it in under 10 s with exit 0.
check_api() {
  local api="$RUN-api" port sample=obama.jpg want reply names t0 ms code
  port=$(free_port)
  FAIL_LOGS=$api
  start_container "$api" "${SECURE_FLAGS[@]}" \
    -e FACEREC_API_ADDR="127.0.0.1:$port" -e FACEREC_HOSTNAME="$RUN" \
    -e RABBITMQ_HOST=127.0.0.1 -e RABBITMQ_PORT="$RABBITMQ_PORT" \
    -e REDIS_HOST=127.0.0.1 -e REDIS_PORT="$REDIS_PORT" \
    "$IMAGE" api "${NAME_FLAGS[@]}" --redis-key-prefix "$KEY_PREFIX"
  local deadline=$((SECONDS + 30))
  until curl -fsS --max-time 5 "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    [[ $(podman inspect --format '{{.State.Running}}' "$api") == true ]] ||
      fail "the api container exited (code $(podman inspect --format '{{.State.ExitCode}}' "$api")): $(podman logs "$api" 2>&1 | tail -n 1)"
    ((SECONDS < deadline)) || fail "/readyz of the api not 200 after 30 s"
    sleep 0.3
  done
  want=$(sha256sum <"$FACEREC_IMAGES/$sample" | cut -d' ' -f1)
  reply=$(curl -fsS --max-time 15 -H 'Content-Type: image/jpg' --data-binary "@$FACEREC_IMAGES/$sample" \
    "http://127.0.0.1:$port/scan/image/$sample") || fail "POST /scan/image/$sample failed"
  [[ $("$PY" -c 'import json,sys; print(json.load(sys.stdin)["hash"])' <<<"$reply") == "$want" ]] ||
    fail "POST /scan/image/$sample answered $reply, not the hash $want"
  reply=$(curl -fsS --max-time 10 "http://127.0.0.1:$port/match/$want") || fail "GET /match/$want failed"
  names=$(REDIS_PORT=$REDIS_PORT "$PY" - "$KEY_PREFIX" "$want" "$reply" <<'PYEOF'
import json, os, sys
import redis
prefix, image, reply = sys.argv[1:4]
db = lambda n: redis.Redis(host="127.0.0.1", port=int(os.environ["REDIS_PORT"]), db=n)
others = [o.decode() for o in db(4).smembers(prefix + image)]
want = sorted({n.decode() for o in others for n in db(2).smembers(prefix + o)})
got = json.loads(reply)
if not want or got != want:
    sys.exit(f"/match answered {got}, databases 2 and 4 say {want}")
print(len(want))
PYEOF
  ) || fail "$names"
  t0=$(date +%s%N)
  podman stop -t 10 "$api" >/dev/null
  ms=$((($(date +%s%N) - t0) / 1000000))
  code=$(podman inspect --format '{{.State.ExitCode}}' "$api")
  ((code == 0)) || fail "after SIGTERM the api exited with code $code (137: killed after 10 s)"
  ((ms < 10000)) || fail "the api took $ms ms to stop"
  say "POST /scan/image answered the hash; /match the $names names databases 2 and 4 hold; stopped (exit 0) $ms ms after SIGTERM"
}

check_worker_stops_on_sigterm() {
  FAIL_LOGS=$WORKER
  local t0 ms code
  t0=$(date +%s%N)
  podman stop -t 10 "$WORKER" >/dev/null
  ms=$((($(date +%s%N) - t0) / 1000000))
  code=$(podman inspect --format '{{.State.ExitCode}}' "$WORKER")
  ((code == 0)) || fail "after SIGTERM the worker exited with code $code (137: killed after 10 s)"
  ((ms < 10000)) || fail "the worker took $ms ms to stop"
  say "exit 0, $ms ms after SIGTERM (podman stop)"
}

# Models missing (a wrong path, an empty folder): exit 2 (a configuration mistake), one
# line on stderr naming the setting and the file.
check_start_without_models() {
  mkdir -p "$WORK/empty"
  local models mount case_name
  for case_name in wrong-path empty-folder; do
    if [[ $case_name == wrong-path ]]; then
      models=/usr/share/facerec/no-models mount=()
    else
      models=/models mount=(-v "$WORK/empty:/models:ro")
    fi
    local name="$RUN-no-models-$case_name"
    FAIL_LOGS=$name
    CONTAINERS+=("$name")
    local code=0
    timeout 60 podman run --pull=never --name "$name" --label "$LABEL=$$" "${SECURE_FLAGS[@]}" "${mount[@]}" \
      -e FACEREC_MODELS="$models" -e FACEREC_HTTP_ADDR=off "$IMAGE" worker "${NAME_FLAGS[@]}" \
      >"$WORK/out" 2>"$WORK/err" || code=$?
    ((code == 2)) || fail "$case_name: exit code $code, expected 2 (0: started; 124: still running after 60 s)"
    local lines
    lines=$(grep -c . "$WORK/err" || true)
    ((lines == 1)) || { cat "$WORK/err" >&2; fail "$case_name: $lines lines on stderr, expected one"; }
    grep -q "^error: FACEREC_MODELS: model file $models/[a-z0-9_]*\.dat not found" "$WORK/err" ||
      fail "$case_name: the line does not name the missing model file: $(cat "$WORK/err")"
    say "$case_name: exit $code: $(cat "$WORK/err")"
  done
}

# ---------------------------------------------------------------------------------------
# Python: databases against the scan, and the cleanup.

write_helper() {
  cat >"$1" <<'EOF'
"""container-test.sh's client of Redis and RabbitMQ."""
import json, os, struct, sys, time
import pika, redis

def db(n):
    return redis.Redis(host="127.0.0.1", port=int(os.environ.get("REDIS_PORT", 6379)), db=n)

def channel():
    params = pika.ConnectionParameters("127.0.0.1", int(os.environ.get("RABBITMQ_PORT", 5672)))
    return pika.BlockingConnection(params)

def results(scan_json, recording_json, prefix, dead_queue, timeout):
    """Waits for every sample in db 2, then compares db 1-4 with `facerec scan --json`
    (same binary, no servers) and db 3's encodings with the committed recording."""
    scan = json.load(open(scan_json))
    name_of = {i["hash"]: os.path.basename(i["names"][0]) for i in scan["images"]}
    want = {name_of[i["hash"]]: (i["hash"], [name_of[i["hash"]]], i["faces"],
                                 sorted(name_of[m["hash"]] for m in i["matches"]))
            for i in scan["images"]}
    d1, d2, d3, d4 = db(1), db(2), db(3), db(4)
    deadline = time.monotonic() + float(timeout)
    while True:
        done = [n for n, w in want.items() if d2.exists(prefix + w[0])]
        if len(done) == len(want):
            break
        if time.monotonic() > deadline:
            print(f"after {timeout} s only {len(done)} of {len(want)} images are stored; "
                  f"missing: {sorted(set(want) - set(done))}")
            try:
                conn = channel()
                ch = conn.channel()
                while True:
                    method, props, _ = ch.basic_get(dead_queue, auto_ack=False)
                    if method is None:
                        break
                    print(f"dead letter: {(props.headers or {}).get('x-facerec-reason')}")
                conn.close()
            except pika.exceptions.AMQPError as e:
                print(f"could not read {dead_queue}: {e!r}")
            sys.exit(1)
        time.sleep(0.2)
    got = {}
    for name in want:
        h = (d1.get(prefix + name) or b"").decode()
        got[name] = (h, sorted(x.decode() for x in d2.smembers(prefix + h)), d3.scard(prefix + h),
                     sorted(name_of.get(x.decode(), x.decode()) for x in d4.smembers(prefix + h)))
    counts = {n: len(list(db(n).scan_iter(match=glob(prefix) + "*", count=1000))) for n in (1, 2, 3, 4)}
    want_counts = {1: len(want), 2: len(want), 3: sum(1 for w in want.values() if w[2]),
                   4: sum(1 for w in want.values() if w[3])}
    print(f"    {'image':<24} {'faces':>5}  matching images (db 4, as facerec scan found)")
    bad = []
    for name in sorted(want):
        w, g = want[name], got[name]
        print(f"    {name:<24} {g[2]:>5}  {' '.join(g[3]) or '-'}")
        for field, a, b in zip(("db 1 hash", "db 2 names", "db 3 faces", "db 4 matches"), w, g):
            if a != b:
                bad.append(f"{name}: {field}: expected {a}, found {b}")
    for n in counts:
        if counts[n] != want_counts[n]:
            bad.append(f"db {n}: {counts[n]} keys with the prefix, expected {want_counts[n]}")
    # The encodings (128 little-endian f64 each) against fixtures/encodings, computed on
    # the host by Python's face_recognition parity tests: the image's libdlib and OpenBLAS
    # must give the same numbers (within 1e-6, as tests/dlib/expectations.rs allows).
    recorded = {i["name"]: [f["encoding"] for f in i["faces"]] for i in json.load(open(recording_json))["images"]}
    worst = 0.0
    for name in sorted(want):
        if name not in recorded:
            bad.append(f"{name}: not in {recording_json}")
            continue
        stored = [struct.unpack("<128d", m) for m in d3.smembers(prefix + got[name][0]) if len(m) == 1024]
        if len(stored) != len(recorded[name]):
            bad.append(f"{name}: db 3 has {len(stored)} encodings, the recording {len(recorded[name])}")
            continue
        for enc in recorded[name]:
            diff = min(max(abs(a - b) for a, b in zip(enc, s)) for s in stored)
            worst = max(worst, diff)
            if diff >= 1e-6:
                bad.append(f"{name}: db 3 encoding differs from the recording by {diff:.3g}")
    print(f"    db 3 encodings equal the recording's within {worst:.1e}")
    for line in bad:
        print("MISMATCH " + line)
    sys.exit(1 if bad else 0)

def glob(s):
    return "".join("\\" + c if c in "*?[]\\" else c for c in s)

def cleanup(prefix, args):
    """Deletes the prefix's keys (db 0-4), then the queues and exchanges named."""
    for n in range(5):
        r = db(n)
        keys = list(r.scan_iter(match=glob(prefix) + "*", count=1000))
        for i in range(0, len(keys), 500):
            r.delete(*keys[i:i + 500])
    split = args.index("--")
    conn = channel()
    for q in args[:split]:
        conn.channel().queue_delete(q)
    for e in args[split + 1:]:
        conn.channel().exchange_delete(e)
    conn.close()

def layers():
    """`podman history --format json` as a table: size and step, bottom layer first."""
    for layer in reversed(json.load(sys.stdin)):
        if layer["size"]:
            step = layer["CreatedBy"].split("/bin/sh -c ", 1)[-1].removeprefix("#(nop) ").strip()
            print(f"    {layer['size'] / 1e6:8.1f} MB  {step[:100]}")

if __name__ == "__main__":
    cmd, *rest = sys.argv[1:]
    if cmd == "results":
        results(*rest)
    elif cmd == "layers":
        layers()
    else:
        cleanup(rest[0], rest[1:])
EOF
}

# ---------------------------------------------------------------------------------------

step "podman, configured in $CDIR"
setup_podman
setup_python
# Both are quick when there is nothing to do: models, sample images, Redis, RabbitMQ.
"$REPO_ROOT/scripts/setup.sh" >/dev/null
if [[ $RABBITMQ_PORT == 5672 && $REDIS_PORT == 6379 ]]; then "$REPO_ROOT/scripts/services.sh"; fi
took

step "expected results: facerec scan --json of the samples (in the background)"
ensure_binary
(cd "$FACEREC_IMAGES" && RUST_BACKTRACE=0 "$BINARY" scan --json "${SAMPLES[@]}" >"$WORK/scan.json" 2>"$WORK/scan.err") &
SCAN_PID=$!

step "image $IMAGE"
choose_build_mode
say "build: $BUILD_MODE"
pinned_models >"$WORK/models.sha256"
(($(wc -l <"$WORK/models.sha256") == 4)) || fail "expected 4 pinned models in $DOCKERFILE"
if [[ $BUILD_MODE == runtime ]]; then
  ensure_base
  stage_contexts
fi
build_image
report_size
took

for check in "${CHECKS[@]}"; do
  step "$check"
  "$check"
  took
done
