#!/usr/bin/env bash
# Start the GeminiVideo workers detached: the ML worker and beat, the render, preview, transcode and
# caption workers and the video beat, optionally Flower and the API. Logs and pid files go to
# $LOG_DIR (default logs/workers/<name>.log|pid). Waits until every worker answers `inspect ping`.
# Running it again starts only what is not running. Stop everything with scripts/stop-workers.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
LOG_DIR=${LOG_DIR:-$ROOT/logs/workers}
READY_TIMEOUT=${READY_TIMEOUT:-120}
LOG_LEVEL=${LOG_LEVEL:-INFO}
export REDIS_URL=${REDIS_URL:-redis://localhost:6379/0}
HOST=$(uname -n)

if [ -t 1 ] || [ -n "${FORCE_COLOR:-}" ]; then
  GREEN=$'\e[32m' RED=$'\e[31m' YELLOW=$'\e[33m' BOLD=$'\e[1m' RESET=$'\e[0m'
else
  GREEN='' RED='' YELLOW='' BOLD='' RESET=''
fi

usage() {
  cat <<EOF
usage: scripts/start-workers.sh [--ml-only | --video-only] [--with-flower] [--with-api] [--concurrency NAME=N]...

  --ml-only             start only the ML worker and the ML beat
  --video-only          start only the video workers and the video beat
  --with-flower         also start Flower on FLOWER_PORT (default 5555) with basic auth
  --with-api            also start the API (uvicorn) on API_HOST:API_PORT (default 127.0.0.1:8003)
  --concurrency NAME=N  pool size of one worker family (ml, render, preview, transcode, caption);
                        the same as the environment variable NAME_CONCURRENCY, e.g. RENDER_CONCURRENCY=1
  -h, --help            this help

environment: REDIS_URL, CELERY_BROKER_URL, LOG_DIR, READY_TIMEOUT (s), LOG_LEVEL, PYTHON
EOF
}

with_ml=1 with_video=1 with_flower=0 with_api=0
declare -A concurrency=()

set_concurrency() {
  local spec=$1 name value
  name=${spec%%=*} value=${spec#*=}
  if [[ $spec != *=* || ! $value =~ ^[1-9][0-9]*$ || ! $name =~ ^(ml|render|preview|transcode|caption)$ ]]; then
    echo "start-workers: --concurrency expects NAME=N with NAME one of ml, render, preview, transcode, caption" >&2
    exit 1
  fi
  concurrency[$name]=$value
}

while (($#)); do
  case $1 in
    --ml-only) with_video=0 ;;
    --video-only) with_ml=0 ;;
    --with-flower) with_flower=1 ;;
    --with-api) with_api=1 ;;
    --concurrency) [ $# -ge 2 ] || { usage >&2; exit 1; }; set_concurrency "$2"; shift ;;
    --concurrency=*) set_concurrency "${1#--concurrency=}" ;;
    -h | --help) usage; exit 0 ;;
    *) echo "start-workers: unknown option: $1" >&2; usage >&2; exit 1 ;;
  esac
  shift
done
if ((!with_ml && !with_video)); then
  echo "start-workers: --ml-only and --video-only exclude each other" >&2
  exit 1
fi

mkdir -p "$LOG_DIR"
cd "$ROOT"

if ! "$PY" -m geminivideo.ops redis-check; then  # URL from the environment: argv is visible in ps
  echo "${RED}start-workers: nothing started${RESET}" >&2
  exit 1
fi

started=() skipped=() failed=()
declare -A worker_host=()

# A pid file names a running process of ours (not a stale file whose pid was reused by something else).
running() {
  local pidfile="$LOG_DIR/$1.pid" pid
  [ -f "$pidfile" ] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && ps -o args= -p "$pid" | grep -q geminivideo
}

# Start one process detached in its own session (pid = process group, so stop can sweep its children).
launch() {
  local name=$1
  shift
  if running "$name"; then
    skipped+=("$name")
    return 0
  fi
  rm -f "$LOG_DIR/$name.pid"
  printf '\n==== %s starting %s ====\n' "$(date -u +%FT%TZ)" "$name" >>"$LOG_DIR/$name.log"
  (exec setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null) &
  echo "$!" >"$LOG_DIR/$name.pid"
  started+=("$name")
}

masked_url() {  # redis://:secret@host -> redis://***@host, for messages
  case $1 in *@*) echo "${1%%://*}://***@${1##*@}" ;; *) echo "$1" ;; esac
}

was_started() {
  local item
  for item in "${started[@]}"; do [ "$item" = "$1" ] && return 0; done
  return 1
}

start_family() {
  local name=$1 app_module=$2 queues=$3 default_conc=$4 hostname=$5 max_tasks=$6 env_name conc
  env_name="${name^^}_CONCURRENCY"
  conc=${concurrency[$name]:-${!env_name:-$default_conc}}
  launch "$name" "$PY" -m celery -A "$app_module" worker -Q "$queues" -c "$conc" -n "$hostname" \
    --max-tasks-per-child "$max_tasks" -E -l "$LOG_LEVEL"
  if was_started "$name"; then worker_host[$name]=${hostname/\%h/$HOST}; fi
}

while read -r name app app_module queues conc hostname max_tasks; do
  if [ "$app" = ml ] && ((!with_ml)); then continue; fi
  if [ "$app" = video ] && ((!with_video)); then continue; fi
  start_family "$name" "$app_module" "$queues" "$conc" "$hostname" "$max_tasks"
done < <("$PY" -m geminivideo.ops plan)

((with_ml)) && launch ml-beat "$PY" -m celery -A geminivideo.ml.celery_app:app beat -l "$LOG_LEVEL"
((with_video)) && launch video-beat "$PY" -m celery -A geminivideo.video.celery_app:app beat -l "$LOG_LEVEL"
((with_flower)) && launch flower "$PY" -m geminivideo.flower
((with_api)) && launch api "$PY" -m uvicorn geminivideo.api:app --host "${API_HOST:-127.0.0.1}" \
  --port "${API_PORT:-8003}"

# Readiness: workers answer ping, each beat holds its RedBeat lock, Flower and the API answer.
not_ready=()
targets=()
for name in "${!worker_host[@]}"; do targets+=("${worker_host[$name]}=$(<"$LOG_DIR/$name.pid")"); done
if ((${#targets[@]})); then
  mapfile -t not_ready < <("$PY" -m geminivideo.ops wait-ready --timeout "$READY_TIMEOUT" \
    "${targets[@]}" || true)
fi

wait_check() {
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

ready() {
  local name=$1 hostname
  running "$name" || return 1  # exited already (bad option, import error, port taken)
  case $name in
    ml-beat) wait_check "$PY" -m geminivideo.ops beat-health --app ml ;;
    video-beat) wait_check "$PY" -m geminivideo.ops beat-health --app video ;;
    flower) wait_check "$PY" -m geminivideo.flower check ;;
    api) wait_check "$PY" -c "import httpx,sys; sys.exit(httpx.get('http://${API_HOST:-127.0.0.1}:${API_PORT:-8003}/health').status_code != 200)" ;;
    *)
      for hostname in "${not_ready[@]}"; do
        [ "$hostname" != "${worker_host[$name]:-}" ] || return 1
      done
      ;;
  esac
}

printf '%s%-12s %-8s %-9s %s%s\n' "$BOLD" "process" "pid" "state" "log" "$RESET"
for name in "${started[@]}"; do
  pid=$(<"$LOG_DIR/$name.pid")
  if ready "$name"; then
    printf '%s%-12s %-8s %-9s %s%s\n' "$GREEN" "$name" "$pid" "started" "$LOG_DIR/$name.log" "$RESET"
  else
    failed+=("$name")
    printf '%s%-12s %-8s %-9s %s%s\n' "$RED" "$name" "$pid" "FAILED" "$LOG_DIR/$name.log" "$RESET"
  fi
done
for name in "${skipped[@]}"; do
  printf '%s%-12s %-8s %-9s %s%s\n' "$YELLOW" "$name" "$(<"$LOG_DIR/$name.pid")" "running" "(already running)" "$RESET"
done

if ((${#failed[@]})); then
  for name in "${failed[@]}"; do
    echo "${RED}${BOLD}$name did not become ready; last lines of $LOG_DIR/$name.log:${RESET}" >&2
    tail -n 20 "$LOG_DIR/$name.log" >&2 || true
  done
  echo "${RED}start-workers: ${#failed[@]} process(es) failed; stop the rest with scripts/stop-workers.sh${RESET}" >&2
  exit 1
fi
echo "${GREEN}start-workers: ${#started[@]} started, ${#skipped[@]} already running (broker $(masked_url "$REDIS_URL"))${RESET}"
