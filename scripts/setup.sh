#!/usr/bin/env bash
# Idempotent set-up: system tools (FFmpeg, espeak-ng, Redis) when missing, then .venv with every extra.
# Safe to run again; `make setup` calls it and records success in .setup-done.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
need_apt=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need_apt+=(ffmpeg)
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
command -v redis-server >/dev/null || need_apt+=(redis-server)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
# Emoji and symbols in text overlays (drawtext has no glyph fallback; fc-match picks the font).
[ -e /usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf ] || need_apt+=(fonts-symbola)
command -v fc-match >/dev/null || need_apt+=(fontconfig)
# Needed by the test suite only: the ops tests drive Flower in headless Chromium, validate the compose
# files with docker-compose and lint the scripts with shellcheck.
test_only=()
command -v chromium >/dev/null || test_only+=(chromium)
command -v docker-compose >/dev/null || test_only+=(docker-compose)
command -v shellcheck >/dev/null || test_only+=(shellcheck)
command -v rabbitmqctl >/dev/null || test_only+=(rabbitmq-server)  # reliability suite: Redis vs RabbitMQ redelivery
# Object-store tests: a real S3-compatible store (Swift + s3api) started by scripts/objectstore.sh.
command -v swift-proxy-server >/dev/null || test_only+=(swift swift-proxy swift-object swift-container swift-account)
command -v memcached >/dev/null || test_only+=(memcached)
command -v promtool >/dev/null || test_only+=(prometheus)  # telemetry tests: a real Prometheus and promtool
command -v mediainfo >/dev/null || test_only+=(mediainfo)  # split transcode tests: independent parsers
command -v mkvinfo >/dev/null || test_only+=(mkvtoolnix)

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
if ((${#need_apt[@]} + ${#test_only[@]})) && can_apt; then
  echo "setup: installing ${need_apt[*]} ${test_only[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" "${test_only[@]}" >/dev/null
elif ((${#need_apt[@]})); then
  echo "setup: missing system packages: ${need_apt[*]}" >&2
  echo "setup: install them (Debian/Ubuntu: sudo apt-get install ${need_apt[*]}) and run make setup again" >&2
  exit 1
elif ((${#test_only[@]})); then
  echo "setup: note: the test suite also needs ${test_only[*]} (sudo apt-get install ${test_only[*]})" >&2
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch is pinned (torch==2.13.0, CPU build) in pyproject's ml extra; an unpinned torch pulls CUDA wheels.
.venv/bin/python -m pip install --quiet -e ".[video,ml,dev]"
echo "setup: done ($(.venv/bin/python --version), ffmpeg $(ffmpeg -version | head -1 | cut -d' ' -f3))"
