#!/usr/bin/env bash
# Makes sure Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672, guest/guest) run:
# installs them from Debian when missing and starts them when stopped. Safe to re-run.
# Usage: scripts/services.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local what=$1 port=$2
  for _ in $(seq 1 120); do
    port_open "$port" && return 0
    sleep 0.5
  done
  echo "$what did not come up on port $port" >&2
  exit 1
}

if ! port_open 6379; then
  apt_install redis-server
  log "starting redis-server"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/facerec-redis.log
  wait_for redis 6379
fi

if ! port_open 5672; then
  apt_install rabbitmq-server
  log "starting rabbitmq-server"
  sudo_if_needed rabbitmq-server -detached
  wait_for rabbitmq 5672
  sudo_if_needed rabbitmqctl await_startup >/dev/null
fi
log "redis and rabbitmq are up"
