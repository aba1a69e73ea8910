#!/usr/bin/env bash
# The four Minyi services and the console as background processes (pid files var/run, logs
# var/log).
# Usage: deploy/local/services.sh up|down|status     (idempotent, any cwd)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN="$ROOT/var/run"
LOGS="$ROOT/var/log"
MINYI="$ROOT/.venv/bin/minyi"
SERVICES=(intake routing followup notification console)
declare -A PORT=(
  [console]="${MINYI_CONSOLE_PORT:-8000}"
  [intake]="${MINYI_INTAKE_PORT:-8001}"
  [routing]="${MINYI_ROUTING_PORT:-8002}"
  [followup]="${MINYI_FOLLOWUP_PORT:-8003}"
  [notification]="${MINYI_NOTIFICATION_PORT:-8004}"
)
# Feedback links open the console's 评价 page (it passes the rating on to followup).
export MINYI_FOLLOWUP_PUBLIC_URL="${MINYI_FOLLOWUP_PUBLIC_URL:-http://127.0.0.1:${PORT[console]}}"
cd "$ROOT"

log() { echo "==> $*"; }
die() { echo "error: $*" >&2; exit 1; }
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
pid_of() { cat "$RUN/$1.pid" 2>/dev/null; }
# Alive and really our service (guards against a stale pid file whose pid was reused).
alive() {
  local pid
  pid=$(pid_of "$1") && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
    [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline")" == *"minyi serve $1 "* ]]
}
ready() { curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:${PORT[$1]}/ready"; }

up() {
  [ -x "$MINYI" ] || die ".venv/bin/minyi not found: run 'make venv' first"
  mkdir -p "$RUN" "$LOGS"
  local svc
  for svc in "${SERVICES[@]}"; do
    if alive "$svc"; then
      log "$svc already running (pid $(pid_of "$svc")), reusing it"
      continue
    fi
    port_open "${PORT[$svc]}" &&
      die "port ${PORT[$svc]} for $svc is taken: $(ss -ltnpH "sport = :${PORT[$svc]}" | awk '{print $6}')"
    log "starting $svc on 127.0.0.1:${PORT[$svc]} (log var/log/$svc.log)"
    nohup setsid "$MINYI" serve "$svc" --port "${PORT[$svc]}" </dev/null >>"$LOGS/$svc.log" 2>&1 &
    echo $! >"$RUN/$svc.pid"
  done
  local deadline=$((SECONDS + 60))
  for svc in "${SERVICES[@]}"; do
    until ready "$svc"; do
      if ! alive "$svc" || [ "$SECONDS" -ge "$deadline" ]; then
        echo "--- last 30 lines of var/log/$svc.log" >&2
        tail -n 30 "$LOGS/$svc.log" >&2
        die "$svc is not ready on port ${PORT[$svc]} ($(alive "$svc" && echo 'timed out after 60 s' || echo 'process exited'))"
      fi
      sleep 0.5
    done
  done
  log "ready: $(for s in "${SERVICES[@]}"; do printf '%s:%s ' "$s" "${PORT[$s]}"; done | sed 's/ $//')"
}

down() {
  local svc pids=()
  for svc in "${SERVICES[@]}"; do
    if alive "$svc"; then
      log "stopping $svc (pid $(pid_of "$svc"))"
      kill -TERM "$(pid_of "$svc")" 2>/dev/null || true
      pids+=("$(pid_of "$svc")")
    fi
  done
  local deadline=$((SECONDS + 20)) pid
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid did not drain within 20 s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  for svc in "${SERVICES[@]}"; do rm -f "$RUN/$svc.pid"; done
}

status() {
  local svc ok=0
  for svc in "${SERVICES[@]}"; do
    if ! alive "$svc"; then
      echo "$svc: not running"; ok=1
    elif ready "$svc"; then
      echo "$svc: running (pid $(pid_of "$svc"), port ${PORT[$svc]}, ready)"
    else
      echo "$svc: running (pid $(pid_of "$svc"), port ${PORT[$svc]}, NOT ready)"; ok=1
    fi
  done
  return "$ok"
}

case "${1:-}" in
  up | down | status) "$1" ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
