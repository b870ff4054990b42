#!/bin/sh
# docker-entrypoint-initdb.d hook of the postgres image (first start only): create the application role
# from the secret database_url_app (postgresql+psycopg://<user>:<password>@postgres:5432/<db>).
set -eu
url=$(cat /run/secrets/database_url_app)
app_user=$(printf '%s' "$url" | sed -E 's#^[a-z+]+://([^:/@]+):.*$#\1#')
app_password=$(printf '%s' "$url" | sed -E 's#^[a-z+]+://[^:/@]+:([^@]+)@.*$#\1#')
APP_PASSWORD=$app_password psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v app_user="$app_user" -v owner="$POSTGRES_USER" -v dbname="$POSTGRES_DB" -f /etc/geminivideo/app-role.sql
