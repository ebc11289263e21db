#!/usr/bin/env bash
# Runs Redis and RabbitMQ (only them) from k8s/overlays/local-dev in the current kubectl
# context and port-forwards them to 127.0.0.1, so that a worker built on this laptop
# (`cargo run --release --features dlib -- worker`) uses them. Safe to re-run.
source "$(dirname "$0")/common.sh"

usage() {
  cat <<EOF
Usage: scripts/deploy-local-dev.sh [--redis-port N] [--amqp-port N] [--management-port N]
       scripts/deploy-local-dev.sh --stop

Applies the Namespace, Secrets, Redis and RabbitMQ of k8s/overlays/local-dev (not the
worker) to the current kubectl context, waits for them, port-forwards them to 127.0.0.1
and prints the environment for 'facerec worker'. Re-running re-applies and replaces the
port-forwards it started (pids in \$FACEREC_CACHE/port-forward.pids); --stop only stops
them.

  --redis-port N        local port for Redis (default 6379)
  --amqp-port N         local port for AMQP (default 5672)
  --management-port N   local port for the RabbitMQ management UI (default 15672)
EOF
}

NAMESPACE=facerec
OVERLAY="$REPO_ROOT/k8s/overlays/local-dev"
PIDS="$FACEREC_CACHE/port-forward.pids"
redis_port=6379 amqp_port=5672 management_port=15672 stop_only=false
while (($#)); do
  case $1 in
    --redis-port) redis_port=$2; shift 2 ;;
    --amqp-port) amqp_port=$2; shift 2 ;;
    --management-port) management_port=$2; shift 2 ;;
    --stop) stop_only=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
command -v kubectl >/dev/null || { echo "kubectl is needed" >&2; exit 1; }

# Stops the port-forwards a previous run started: only pids that still are port-forwards.
stop_port_forwards() {
  [[ -f $PIDS ]] || return 0
  local pid
  while read -r pid; do
    if ps -p "$pid" -o command= 2>/dev/null | grep -q port-forward; then kill "$pid"; fi
  done <"$PIDS"
  rm -f "$PIDS"
}
stop_port_forwards
if $stop_only; then log "port-forwards stopped"; exit 0; fi

log "applying Redis and RabbitMQ to context $(kubectl config current-context)"
# Everything of the overlay except the worker's objects (component=worker).
kubectl apply -k "$OVERLAY" -l 'app.kubernetes.io/component!=worker'
for sts in redis rabbitmq; do
  kubectl -n "$NAMESPACE" rollout status "statefulset/$sts" --timeout=300s
done

secret() { kubectl -n "$NAMESPACE" get secret "$1" -o "jsonpath={.data.$2}" | base64 -d; }

# port_forward SERVICE LOCAL:REMOTE...: in the background, its pid recorded; waits until
# the first local port answers.
port_forward() {
  local service=$1 first=${2%%:*} log_file="$FACEREC_CACHE/port-forward-$1.log"
  shift
  nohup kubectl -n "$NAMESPACE" port-forward --address 127.0.0.1 "service/$service" "$@" \
    >"$log_file" 2>&1 &
  echo $! >>"$PIDS"
  for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$first") 2>/dev/null; then return 0; fi
    if ! kill -0 $! 2>/dev/null; then break; fi
    sleep 0.2
  done
  cat "$log_file" >&2
  stop_port_forwards
  echo "port-forward to $service failed: is a local port taken? (see --help)" >&2
  exit 1
}
mkdir -p "$FACEREC_CACHE"
port_forward redis "$redis_port:6379"
port_forward rabbitmq "$amqp_port:5672" "$management_port:15672"

log "Redis on 127.0.0.1:$redis_port, RabbitMQ on 127.0.0.1:$amqp_port (UI http://127.0.0.1:$management_port)"
cat <<EOF
# For 'facerec worker' (and submit, logs, matches) on this machine:
export REDIS_HOST=127.0.0.1 REDIS_PORT=$redis_port
export REDIS_PASSWORD='$(secret redis-credentials password)'
export RABBITMQ_HOST=127.0.0.1 RABBITMQ_PORT=$amqp_port
export RABBITMQ_USER='$(secret rabbitmq-credentials username)'
export RABBITMQ_PASSWORD='$(secret rabbitmq-credentials password)'
EOF
