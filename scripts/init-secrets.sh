#!/usr/bin/env bash
# Create the Docker secrets docker compose reads from ${SECRETS_DIR:-./secrets}: random passwords for
# PostgreSQL (owner and application role) and one Redis user per role, a bootstrap admin API key (printed
# once), Flower's password, and the HubSpot app secret taken from HUBSPOT_CLIENT_SECRET (the only value
# you must supply). Existing files are kept, so running it again changes nothing.
# The folder is mode 700 (only you on the host); the files are 644 because compose bind-mounts them and the
# containers' unprivileged users must read them.
set -euo pipefail
dir=${SECRETS_DIR:-./secrets}
mkdir -p "$dir"
chmod 700 "$dir"
umask 022

random() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
put() {  # put NAME VALUE: write the secret unless it exists
  if [ -e "$dir/$1" ]; then echo "kept    $dir/$1"; return; fi
  printf '%s' "$2" > "$dir/$1"
  echo "created $dir/$1"
}

[ -e "$dir/postgres_password" ] || put postgres_password "$(random)"
owner_pw=$(cat "$dir/postgres_password")
put database_url_owner "postgresql+psycopg://geminivideo:$owner_pw@postgres:5432/geminivideo"
put database_url_app "postgresql+psycopg://geminivideo_app:$(random)@postgres:5432/geminivideo"
for role in api ml video beat flower; do
  put "redis_url_$role" "redis://$role:$(random)@redis:6379/0"
done
put flower_password "$(random)"
if [ ! -e "$dir/api_keys" ]; then
  token=$(random)
  put api_keys "admin=$token"
  echo "bootstrap admin API key (shown once): $token"
fi
if [ ! -e "$dir/hubspot_client_secret" ]; then
  : "${HUBSPOT_CLIENT_SECRET:?set HUBSPOT_CLIENT_SECRET (your HubSpot app secret) and run again}"
  put hubspot_client_secret "$HUBSPOT_CLIENT_SECRET"
fi
# Object-store credentials (README "Media in an object store"): empty files mean "no object store" (or the
# default AWS credential chain); fill them in for S3, GCS HMAC keys or MinIO.
put aws_access_key_id "${AWS_ACCESS_KEY_ID:-}"
put aws_secret_access_key "${AWS_SECRET_ACCESS_KEY:-}"
# Telemetry: the bearer token Prometheus sends to /metrics (API and worker hosts), and Grafana's admin password.
put metrics_token "$(random)"
put grafana_admin_password "$(random)"
