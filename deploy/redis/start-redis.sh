#!/bin/sh
# Start Redis with one ACL user per role (deploy/redis/roles.acl). Each role's password is read from its
# Docker secret, a full URL (redis://<role>:<password>@redis:6379/0), and only its SHA-256 is written to
# the ACL file; the default (passwordless) user is turned off. Arguments go on to redis-server.
set -eu
SECRETS_DIR=${SECRETS_DIR:-/run/secrets}
ROLES=${ROLES:-/etc/redis/roles.acl}
ACL_FILE=${ACL_FILE:-/tmp/users.acl}
REDIS_SERVER=${REDIS_SERVER:-redis-server}  # in compose: docker-entrypoint.sh (it drops root, then runs redis-server)

umask 077
echo "user default off resetpass nocommands" > "$ACL_FILE"
grep -v '^[[:space:]]*\(#\|$\)' "$ROLES" | while read -r user rules; do
  url_file="$SECRETS_DIR/redis_url_$user"
  [ -r "$url_file" ] || { echo "start-redis: missing secret redis_url_$user ($url_file)" >&2; exit 1; }
  password=$(sed -E 's#^rediss?://[^:/@]*:([^@]+)@.*$#\1#' "$url_file")
  if [ -z "$password" ] || [ "$password" = "$(cat "$url_file")" ]; then
    echo "start-redis: redis_url_$user must look like redis://$user:<password>@host:port/db" >&2
    exit 1
  fi
  hash=$(printf '%s' "$password" | sha256sum | cut -d' ' -f1)
  echo "user $user on #$hash $rules" >> "$ACL_FILE"
done
# The image's entrypoint drops root for the redis user: that user must be able to read the (hashes-only) file.
if [ "$(id -u)" = 0 ] && id redis >/dev/null 2>&1; then chown redis "$ACL_FILE"; fi
exec $REDIS_SERVER --aclfile "$ACL_FILE" "$@"
