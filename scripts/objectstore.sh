#!/usr/bin/env bash
# A one-node, one-replica S3-compatible object store on loopback: OpenStack Swift with its s3api
# middleware (Debian packages swift swift-proxy swift-object swift-container swift-account memcached).
#
#   scripts/objectstore.sh run DIR PORT     foreground: write configs into DIR, serve S3 on 127.0.0.1:PORT
#                                           (uses PORT+1..PORT+4 for the account/container/object servers
#                                           and memcached); TERM stops every server it started
#   scripts/objectstore.sh start [DIR] [PORT]   the same in the background (pid in DIR/objectstore.pid)
#   scripts/objectstore.sh stop [DIR]       stop the background one by its pid
#   scripts/objectstore.sh env [PORT]       print the S3_ENDPOINT_URL / AWS_* lines for this store
#
# Defaults: DIR=var/objectstore, PORT=8089. S3 credentials: access key test:tester, secret testing
# (tempauth); a user test:reader / reader-secret without rights on the account's buckets lets tests see AccessDenied.
# Facts behind the settings: ../shared/FIELD-NOTES.md ("S3-compatible object store").
set -euo pipefail

ACCESS_KEY="test:tester"
SECRET_KEY="testing"

usage() { sed -n '2,13p' "$0" >&2; exit 2; }

write_server_conf() {  # name port dir
  local name=$1 port=$2 dir=$3
  cat >"$dir/etc/$name-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $port
workers = 0
mount_check = false
devices = $dir/srv
swift_dir = $dir/etc
log_name = $name-server
log_level = WARNING

[pipeline:main]
pipeline = $name-server

[app:$name-server]
use = egg:swift#$name
EOF
}

write_proxy_conf() {  # port memcached_port dir
  local port=$1 mport=$2 dir=$3
  cat >"$dir/etc/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $port
workers = 0
swift_dir = $dir/etc
log_name = proxy-server
log_level = WARNING

[pipeline:main]
# cache (with memcached) is required by s3api; slo carries multipart uploads.
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = $SECRET_KEY .admin
user_test_reader = reader-secret

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$mport

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo
EOF
}

build_rings() {  # dir port: one ring per server kind, one device each, in one Python process (fast to start)
  local dir=$1 port=$2
  /usr/bin/python3 - "$dir/etc" "$port" <<'PY'
import sys
from swift.common.ring import RingBuilder

etc, port = sys.argv[1], int(sys.argv[2])
for offset, kind in enumerate(("account", "container", "object"), start=1):
    builder = RingBuilder(8, 1, 1)  # 2^8 partitions, 1 replica, 1 hour between moves
    builder.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": port + offset, "device": "d1",
                     "weight": 100, "meta": ""})
    builder.rebalance()
    builder.get_ring().save(f"{etc}/{kind}.ring.gz")
    builder.save(f"{etc}/{kind}.builder")
PY
  local kind
  for kind in account container object; do
    [ -s "$dir/etc/$kind.ring.gz" ] || { echo "objectstore: could not build the $kind ring" >&2; exit 1; }
  done
}

configure() {  # dir port
  local dir=$1 port=$2
  mkdir -p "$dir/etc" "$dir/srv/d1" "$dir/run"
  rm -f "$dir"/etc/*.builder "$dir"/etc/*.ring.gz
  rm -rf "$dir/etc/backups"
  write_server_conf account $((port + 1)) "$dir"
  write_server_conf container $((port + 2)) "$dir"
  write_server_conf object $((port + 3)) "$dir"
  write_proxy_conf "$port" $((port + 4)) "$dir"
  build_rings "$dir" "$port"
}

require_packages() {
  local cmd
  for cmd in swift-proxy-server swift-account-server swift-container-server swift-object-server swift-ring-builder memcached; do
    command -v "$cmd" >/dev/null || {
      echo "objectstore: $cmd is missing: apt-get install swift swift-proxy swift-object swift-container swift-account memcached" >&2
      exit 1
    }
  done
  [ -e /etc/swift/swift.conf ] || { echo "objectstore: /etc/swift/swift.conf is missing (reinstall the swift package)" >&2; exit 1; }
}

run() {  # dir port: foreground; children die with us
  local dir=$1 port=$2 pids=()
  require_packages
  configure "$dir" "$port"
  # shellcheck disable=SC2317  # called by the trap
  stop_children() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait; exit 0; }
  trap stop_children TERM INT
  memcached -l 127.0.0.1 -p $((port + 4)) -U 0 -m 64 -u "$(id -un)" &
  pids+=($!)
  local name
  for name in account container object proxy; do
    "swift-$name-server" "$dir/etc/$name-server.conf" &
    pids+=($!)
  done
  echo "objectstore: serving S3 on http://127.0.0.1:$port (data in $dir/srv)"
  wait -n || true
  echo "objectstore: a server exited; stopping the others" >&2
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait
  exit 1
}

healthy() { curl -fsS -m 2 "http://127.0.0.1:$1/healthcheck" >/dev/null 2>&1; }

start() {  # dir port: background, wait until healthy
  local dir=$1 port=$2
  mkdir -p "$dir"
  if [ -s "$dir/objectstore.pid" ] && kill -0 "$(cat "$dir/objectstore.pid")" 2>/dev/null && healthy "$port"; then
    echo "objectstore: already running (pid $(cat "$dir/objectstore.pid"))"
    return 0
  fi
  setsid "$0" run "$dir" "$port" >"$dir/objectstore.log" 2>&1 </dev/null &
  echo $! >"$dir/objectstore.pid"
  for _ in $(seq 1 360); do  # up to 3 minutes: a busy machine starts five Python servers slowly
    if healthy "$port"; then echo "objectstore: up on http://127.0.0.1:$port"; return 0; fi
    kill -0 "$(cat "$dir/objectstore.pid")" 2>/dev/null || break
    sleep 0.5
  done
  echo "objectstore: did not start; log:" >&2
  tail -20 "$dir/objectstore.log" >&2
  exit 1
}

stop() {  # dir
  local dir=$1 pid
  [ -s "$dir/objectstore.pid" ] || { echo "objectstore: not running (no $dir/objectstore.pid)"; return 0; }
  pid=$(cat "$dir/objectstore.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  rm -f "$dir/objectstore.pid"
  echo "objectstore: stopped"
}

cmd=${1:-}
case "$cmd" in
  run) [ $# -eq 3 ] || usage; run "$(realpath -m "$2")" "$3" ;;
  start) start "$(realpath -m "${2:-var/objectstore}")" "${3:-8089}" ;;
  stop) stop "$(realpath -m "${2:-var/objectstore}")" ;;
  env)
    echo "S3_ENDPOINT_URL=http://127.0.0.1:${2:-8089}"
    echo "AWS_ACCESS_KEY_ID=$ACCESS_KEY"
    echo "AWS_SECRET_ACCESS_KEY=$SECRET_KEY"
    echo "AWS_REGION=us-east-1" ;;
  *) usage ;;
esac
