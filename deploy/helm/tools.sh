#!/usr/bin/env bash
# Tools the chart's tests need, pinned and cached under var/tools (idempotent, any cwd):
#   helm             from its Go module (go install)
#   CRD validators   KEDA and prometheus-operator models from npm (deploy/helm/schemas lock)
#   CRDs             ScaledObject, TriggerAuthentication, ServiceMonitor and MongoDBCommunity
#                    from the Go modules of KEDA, prometheus-operator and the MongoDB
#                    Community operator (their own config/crd files)
# RabbitmqCluster has no published schema package reachable here: see docs/deploy.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$ROOT/var/tools"
HELM_VERSION=v3.22.0
MONGODB_OPERATOR_VERSION=v0.9.0
KEDA_VERSION=v2.21.0
PROMETHEUS_OPERATOR_VERSION=v0.85.0
export PATH="/usr/local/go/bin:$PATH" GOBIN="$TOOLS/bin" GOFLAGS=-mod=mod

log() { echo "==> $*"; }
mkdir -p "$TOOLS/bin" "$TOOLS/crds"

# (A go-installed helm reports only v3.22 as its version: a stamp file records the pin.)
if [ ! -x "$TOOLS/bin/helm" ] || [ "$(cat "$TOOLS/bin/helm.version" 2>/dev/null)" != "$HELM_VERSION" ]; then
  command -v go >/dev/null || { echo "error: Go is needed to build helm (go install)" >&2; exit 1; }
  log "building helm $HELM_VERSION from its Go module into var/tools/bin (a few minutes, once)"
  go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "$HELM_VERSION" >"$TOOLS/bin/helm.version"
fi

NODE="$TOOLS/node"
if ! cmp -s "$ROOT/deploy/helm/schemas/package-lock.json" "$NODE/package-lock.json"; then
  log "installing the CRD validators from npm into var/tools/node"
  mkdir -p "$NODE"
  cp "$ROOT/deploy/helm/schemas/package.json" "$ROOT/deploy/helm/schemas/package-lock.json" "$NODE/"
  (cd "$NODE" && npm ci --no-audit --no-fund --loglevel=error)
fi

# crd MODULE VERSION PATH: one CRD file of a project's own Go module, as var/tools/crds/<file>.
crd() {
  local dest="$TOOLS/crds/$2-$(basename "$3")" dir
  [ -s "$dest" ] && return
  log "fetching $(basename "$3") from $1@$2 (Go module)"
  dir=$(go mod download -json "$1@$2" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  cp "$dir/$3" "$dest.tmp"
  mv "$dest.tmp" "$dest"
}
crd github.com/kedacore/keda/v2 "$KEDA_VERSION" config/crd/bases/keda.sh_scaledobjects.yaml
crd github.com/kedacore/keda/v2 "$KEDA_VERSION" config/crd/bases/keda.sh_triggerauthentications.yaml
crd github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR_VERSION" \
  example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml
crd github.com/mongodb/mongodb-kubernetes-operator "$MONGODB_OPERATOR_VERSION" \
  config/crd/bases/mongodbcommunity.mongodb.com_mongodbcommunity.yaml
