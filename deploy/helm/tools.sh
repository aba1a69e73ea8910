#!/usr/bin/env bash
# Tools the chart's tests need, pinned and cached under var/tools (idempotent, any cwd):
#   helm             from its Go module (go install)
#   CRD validators   KEDA and prometheus-operator models from npm (deploy/helm/schemas lock)
#   MongoDBCommunity the CRD from the MongoDB Community operator's Go module
# RabbitmqCluster has no published schema package reachable here: see docs/deploy.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$ROOT/var/tools"
HELM_VERSION=v3.22.0
MONGODB_OPERATOR_VERSION=v0.9.0
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

CRD="$TOOLS/crds/mongodbcommunity-$MONGODB_OPERATOR_VERSION.yaml"
if [ ! -s "$CRD" ]; then
  log "fetching the MongoDBCommunity CRD (operator $MONGODB_OPERATOR_VERSION, Go module)"
  dir=$(go mod download -json "github.com/mongodb/mongodb-kubernetes-operator@$MONGODB_OPERATOR_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  cp "$dir/config/crd/bases/mongodbcommunity.mongodb.com_mongodbcommunity.yaml" "$CRD.tmp"
  mv "$CRD.tmp" "$CRD"
fi
