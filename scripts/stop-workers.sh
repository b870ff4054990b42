#!/usr/bin/env bash
# Stop what scripts/start-workers.sh started: TERM to each process named by a pid file in $LOG_DIR
# (a Celery worker's warm shutdown: tasks in progress finish, or are requeued thanks to late acks),
# KILL of the whole process group after $STOP_TIMEOUT seconds, pid files removed, stale ones too.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_DIR=${LOG_DIR:-$ROOT/logs/workers}
STOP_TIMEOUT=${STOP_TIMEOUT:-60}

if [ -t 1 ] || [ -n "${FORCE_COLOR:-}" ]; then
  GREEN=$'\e[32m' RED=$'\e[31m' YELLOW=$'\e[33m' RESET=$'\e[0m'
else
  GREEN='' RED='' YELLOW='' RESET=''
fi

case ${1:-} in
  "") ;;
  -h | --help) echo "usage: scripts/stop-workers.sh   (environment: LOG_DIR, STOP_TIMEOUT seconds)"; exit 0 ;;
  *) echo "stop-workers: unknown option: $1" >&2; echo "usage: scripts/stop-workers.sh" >&2; exit 1 ;;
esac

shopt -s nullglob
pidfiles=("$LOG_DIR"/*.pid)
if ((${#pidfiles[@]} == 0)); then
  echo "stop-workers: nothing to stop (no pid files in $LOG_DIR)"
  exit 0
fi

ours() {
  kill -0 "$1" 2>/dev/null && ps -o args= -p "$1" | grep -q geminivideo
}

declare -A pending=()
# Beats first, so nothing new is scheduled while the workers drain.
for pidfile in "$LOG_DIR"/*beat.pid "${pidfiles[@]}"; do
  [ -f "$pidfile" ] || continue
  name=$(basename "$pidfile" .pid)
  [ -z "${pending[$name]:-}" ] || continue
  pid=$(<"$pidfile")
  if [[ ! $pid =~ ^[0-9]+$ ]] || ! ours "$pid"; then
    echo "${YELLOW}$name: stale pid file (pid ${pid:-none} is not running), removed${RESET}"
    rm -f "$pidfile"
    continue
  fi
  kill -TERM "$pid" 2>/dev/null || true
  pending[$name]=$pid
done

deadline=$((SECONDS + STOP_TIMEOUT))
while ((SECONDS < deadline)); do
  alive=0
  for name in "${!pending[@]}"; do kill -0 "${pending[$name]}" 2>/dev/null && alive=1; done
  ((alive)) || break
  sleep 0.5
done

mapfile -t names < <(printf '%s\n' "${!pending[@]}" | sort)
for name in "${names[@]}"; do
  [ -n "$name" ] || continue
  pid=${pending[$name]}
  if kill -0 "$pid" 2>/dev/null; then
    echo "${RED}$name (pid $pid) did not stop within ${STOP_TIMEOUT}s: killed (its running tasks are redelivered)${RESET}"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  else
    echo "${GREEN}stopped $name (pid $pid)${RESET}"
  fi
  # Stragglers of the group (a pool child or an encoder that outlived its parent) go too.
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$LOG_DIR/$name.pid"
done
