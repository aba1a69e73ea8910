#!/usr/bin/env bash
# Local infrastructure for Minyi, no Docker: RabbitMQ (Debian package, management plugin)
# and FerretDB v1.24 (MongoDB wire protocol on SQLite under var/).
# Usage: deploy/local/stack.sh up|down|status     (idempotent, any cwd)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VAR="$ROOT/var"
MONGO_PORT="${MINYI_MONGO_PORT:-27017}"
AMQP_PORT=5672
MGMT_PORT=15672
FERRET_VERSION=v1.24.2
FERRET_MOD=github.com/FerretDB/FerretDB
FERRET_BIN="$VAR/bin/ferretdb"
FERRET_PID="$VAR/run/ferretdb.pid"
FERRET_LOG="$VAR/log/ferretdb.log"
INDEXER_PID="$VAR/run/ferretdb-index.pid"
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
cd "$ROOT"

log() { echo "==> $*"; }
die() { echo "error: $*" >&2; exit 1; }
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
port_owner() { ss -ltnpH "sport = :$1" | awk '{print $4, $6}' | head -n 1; }
indent() { head -n "${1:-3}" | cut -c1-300 | sed 's/^/    /'; }

# --- RabbitMQ ---------------------------------------------------------------
rabbit_ping() { command -v rabbitmq-diagnostics >/dev/null && rabbitmq-diagnostics -q ping >/dev/null 2>&1; }
rabbit_mgmt() { curl -sf -u guest:guest "http://127.0.0.1:$MGMT_PORT/api/overview" >/dev/null; }
rabbit_ready() { rabbit_ping && port_open "$AMQP_PORT" && rabbit_mgmt; }

rabbit_up() {
  if ! command -v rabbitmq-server >/dev/null; then
    log "installing rabbitmq-server (apt-get)"
    [ "$(id -u)" = 0 ] || die "rabbitmq-server is not installed and we are not root: apt-get install rabbitmq-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  if rabbit_ping; then
    log "RabbitMQ already running, reusing it"
    rabbit_mgmt || rabbitmq-plugins -q enable rabbitmq_management >/dev/null
  else
    for p in "$AMQP_PORT" "$MGMT_PORT"; do
      if port_open "$p"; then
        die "port $p is taken by something that is not a RabbitMQ answering ping: $(port_owner "$p")"
      fi
    done
    log "starting RabbitMQ"
    rabbitmq-plugins enable --offline rabbitmq_management >/dev/null
    rabbitmq-server -detached >/dev/null
  fi
  local deadline=$((SECONDS + 90))
  until rabbit_ready; do
    [ "$SECONDS" -lt "$deadline" ] || die "RabbitMQ not ready after 90 s (see /var/log/rabbitmq/)"
    sleep 1
  done
  log "RabbitMQ ready: amqp 127.0.0.1:$AMQP_PORT, management http://127.0.0.1:$MGMT_PORT"
}

rabbit_down() {
  if rabbit_ping; then
    log "stopping RabbitMQ"
    rabbitmqctl -q shutdown >/dev/null
  else
    log "RabbitMQ not running"
  fi
}

# --- FerretDB ---------------------------------------------------------------
ferret_ours() {
  local pid
  pid=$(cat "$FERRET_PID" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline")" == *"$FERRET_BIN"* ]]
}
# Capture, then match: `| grep -q` under pipefail fails when grep exits before the writer (SIGPIPE).
ferret_binary_ok() { [ -x "$FERRET_BIN" ] && [[ "$("$FERRET_BIN" --version 2>/dev/null)" == *"version: v1.24."* ]]; }
speaks_mongo() {
  [ -x "$ROOT/.venv/bin/python" ] && "$ROOT/.venv/bin/python" -c '
import sys, pymongo
pymongo.MongoClient(port=int(sys.argv[1]), serverSelectionTimeoutMS=2000).admin.command("ping")
' "$MONGO_PORT" >/dev/null 2>&1
}

ferret_build() {
  command -v go >/dev/null || die "Go toolchain not found (looked on PATH and /usr/local/go/bin)"
  mkdir -p "$VAR/bin" "$VAR/build"
  local out
  log "building FerretDB $FERRET_VERSION (go install)"
  if out=$(GOBIN="$VAR/bin" go install "$FERRET_MOD/cmd/ferretdb@$FERRET_VERSION" 2>&1) &&
    out=$("$FERRET_BIN" --version 2>&1); then
    ferret_binary_ok && return 0
  fi
  echo "    go install did not give a working binary:"
  printf '%s\n' "$out" | indent 3
  # The module zip lacks the generated build/version/version.txt, so build from a patched copy.
  log "building FerretDB $FERRET_VERSION from module source (go mod download + go build)"
  local json dir src="$VAR/build/ferretdb-src"
  json=$(cd "$VAR/build" && GOFLAGS=-mod=mod go mod download -json "$FERRET_MOD@$FERRET_VERSION" 2>&1) ||
    die "go mod download $FERRET_MOD@$FERRET_VERSION failed: $json"
  dir=$(python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])' <<<"$json")
  rm -rf "$src"
  cp -r "$dir" "$src"
  chmod -R u+w "$src"
  echo "$FERRET_VERSION" >"$src/build/version/version.txt"
  out=$(cd "$src" && go build -buildvcs=false -o "$FERRET_BIN" ./cmd/ferretdb 2>&1) ||
    die "FerretDB source build failed: $(printf '%s\n' "$out" | indent 10)"
  rm -rf "$src"
  ferret_binary_ok || die "built $FERRET_BIN but '--version' does not report v1.24: $("$FERRET_BIN" --version 2>&1 | indent 3)"
}

ferret_up() {
  if ferret_ours; then
    log "FerretDB already running (pid $(cat "$FERRET_PID")), reusing it"
    return 0
  fi
  if port_open "$MONGO_PORT"; then
    speaks_mongo || die "port $MONGO_PORT is taken and does not answer a MongoDB ping (or .venv/pymongo is missing to check): $(port_owner "$MONGO_PORT")"
    log "port $MONGO_PORT: a MongoDB-protocol server that is not ours answers ($(port_owner "$MONGO_PORT")), reusing it"
    return 0
  fi
  mkdir -p "$VAR/ferretdb" "$VAR/run" "$VAR/log"
  ferret_binary_ok || ferret_build
  log "starting FerretDB on 127.0.0.1:$MONGO_PORT (data in var/ferretdb, log var/log/ferretdb.log)"
  # WAL with synchronous=NORMAL: a commit survives a killed process (what the chaos drill does),
  # only an OS crash or power cut can lose the last ones; about 4x the concurrent writes of FULL.
  nohup setsid "$FERRET_BIN" --handler=sqlite --sqlite-url="file:$VAR/ferretdb/?_pragma=synchronous(normal)" \
    --state-dir="$VAR/ferretdb" --listen-addr="127.0.0.1:$MONGO_PORT" --debug-addr=- \
    --telemetry=disable --log-level=warn </dev/null >>"$FERRET_LOG" 2>&1 &
  echo $! >"$FERRET_PID"
  local deadline=$((SECONDS + 30))
  until port_open "$MONGO_PORT"; do
    if ! ferret_ours || [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 30 "$FERRET_LOG" >&2
      die "FerretDB did not start listening on $MONGO_PORT"
    fi
    sleep 0.5
  done
  log "FerretDB ready: mongodb://127.0.0.1:$MONGO_PORT/"
}

# FerretDB 1.24 on SQLite scans a whole table for every lookup by _id unless this index keeper
# runs beside it (docs/adr/0005-ferretdb-id-lookup-index.md).
indexer_ours() {
  local pid
  pid=$(cat "$INDEXER_PID" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline")" == *ferretdb_id_index.py* ]]
}

indexer_up() {
  ferret_ours || return 0 # a store that is not ours (MongoDB, someone's FerretDB) is left alone
  indexer_ours && return 0
  python3 "$ROOT/deploy/local/ferretdb_id_index.py" "$VAR/ferretdb" ||
    die "could not add the _id lookup index to the FerretDB databases in var/ferretdb"
  nohup setsid python3 "$ROOT/deploy/local/ferretdb_id_index.py" "$VAR/ferretdb" --every 2 \
    </dev/null >>"$VAR/log/ferretdb-index.log" 2>&1 &
  echo $! >"$INDEXER_PID"
  log "FerretDB _id lookup index keeper running (log var/log/ferretdb-index.log)"
}

indexer_down() {
  if indexer_ours; then kill -TERM "$(cat "$INDEXER_PID")" 2>/dev/null || true; fi
  rm -f "$INDEXER_PID"
}

ferret_down() {
  if ! ferret_ours; then
    rm -f "$FERRET_PID"
    log "FerretDB (ours) not running"
    return 0
  fi
  local pid
  pid=$(cat "$FERRET_PID")
  log "stopping FerretDB (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$FERRET_PID"
}

# --- commands ---------------------------------------------------------------
# --- Browser for the console's tests (Playwright drives Debian's chromium) ----------------
browser_up() {
  if command -v chromium >/dev/null && fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "chromium and fonts-noto-cjk are missing and we are not root: apt-get install chromium fonts-noto-cjk"
  log "installing chromium and fonts-noto-cjk (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
}

up() {
  browser_up
  rabbit_up
  ferret_up
  indexer_up
  [ -x "$ROOT/.venv/bin/minyi" ] || die ".venv/bin/minyi not found: run 'make venv' (installs the project) first"
  log "minyi broker setup (vhost, users, permissions)"
  "$ROOT/.venv/bin/minyi" broker setup
  log "stack is up"
}

status() {
  local ok=0
  if rabbit_ready; then
    echo "rabbitmq: running (amqp 127.0.0.1:$AMQP_PORT, management http://127.0.0.1:$MGMT_PORT)"
  else
    echo "rabbitmq: not running"; ok=1
  fi
  if ferret_ours; then
    echo "ferretdb: running (pid $(cat "$FERRET_PID"), mongodb://127.0.0.1:$MONGO_PORT/)"
    indexer_ours && echo "ferretdb _id index keeper: running (pid $(cat "$INDEXER_PID"))" ||
      { echo "ferretdb _id index keeper: not running"; ok=1; }
  elif port_open "$MONGO_PORT"; then
    echo "ferretdb: not ours; port $MONGO_PORT is served by $(port_owner "$MONGO_PORT")"
  else
    echo "ferretdb: not running"; ok=1
  fi
  return "$ok"
}

case "${1:-}" in
  up) up ;;
  down) indexer_down; ferret_down; rabbit_down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
