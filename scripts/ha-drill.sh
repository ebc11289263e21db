#!/usr/bin/env bash
# Failover drills of issue 17 (scripts/ha_drill.py): a 3-node RabbitMQ cluster and Redis
# with Sentinel of their own, faults mid-batch, then exactly-once-in-effect checks and the
# figures (stall seconds, images/s). Touches nothing on the standard ports except epmd
# (4369, shared by design) and the machine's RabbitMQ for the Redis drill's own queue.
# Usage: scripts/ha-drill.sh [--runs 3] [--images 200] [--only rabbitmq|redis] [--rabbit-delay-ms 1500] [--keep]
# FACEREC_BIN: a facerec binary to drill instead of building the release one.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
"$REPO_ROOT/scripts/services.sh"
"$REPO_ROOT/scripts/python-env.sh"
if [[ -z ${FACEREC_BIN:-} ]]; then
  ensure_rust
  cargo build --manifest-path "$REPO_ROOT/Cargo.toml" --release --quiet
fi
cd "$REPO_ROOT/scripts"
exec "$FACEREC_VENV/bin/python" ha_drill.py "$@"
