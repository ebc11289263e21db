#!/usr/bin/env bash
# Deploys the whole facerec stack (Redis, RabbitMQ, workers) from k8s/overlays/<env> to the
# current kubectl context and waits until it runs. Safe to re-run.
source "$(dirname "$0")/common.sh"

usage() {
  cat <<EOF
Usage: scripts/deploy.sh [--env NAME] [--image IMAGE] [--keda] [--timeout DURATION]

Applies k8s/overlays/NAME (default local-dev) to the current kubectl context and waits
for the rollout of Redis, RabbitMQ and the workers.

  --env NAME           overlay under k8s/overlays/ (default local-dev)
  --image IMAGE        worker image, e.g. registry.example/facerec:1.2.3 (set after the
                       apply; the next apply without --image goes back to the overlay's)
  --keda               also apply k8s/keda (needs KEDA installed in the cluster)
  --timeout DURATION   how long to wait for each rollout (default 10m)
EOF
}

NAMESPACE=facerec
env_name=local-dev image="" keda=false timeout=10m
while (($#)); do
  case $1 in
    --env) env_name=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --keda) keda=true; shift ;;
    --timeout) timeout=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
command -v kubectl >/dev/null || { echo "kubectl is needed" >&2; exit 1; }
overlay="$REPO_ROOT/k8s/overlays/$env_name"
[[ -f $overlay/kustomization.yaml ]] || { echo "no overlay $overlay" >&2; exit 1; }
if $keda && ! kubectl get crd scaledobjects.keda.sh >/dev/null 2>&1; then
  echo "--keda: KEDA's CRDs are not in this cluster; install KEDA first (https://keda.sh)" >&2
  exit 1
fi

log "applying $overlay to context $(kubectl config current-context)"
kubectl apply -k "$overlay"
if [[ -n $image ]]; then
  log "worker image: $image"
  kubectl -n "$NAMESPACE" set image deployment/facerec-worker "worker=$image"
fi
if $keda; then
  kubectl apply -f "$REPO_ROOT/k8s/keda/scaledobject.yaml"
fi

for workload in statefulset/redis statefulset/rabbitmq deployment/facerec-worker; do
  kubectl -n "$NAMESPACE" rollout status "$workload" --timeout="$timeout"
done
kubectl -n "$NAMESPACE" get pods -o wide
