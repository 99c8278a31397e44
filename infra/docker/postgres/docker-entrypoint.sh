#!/usr/bin/env bash
# Entry point of the local postgres image (infra/docker/postgres/Dockerfile): the part of the official
# postgres image's docker-entrypoint.sh that hothot uses, written anew. As root it fixes the data
# directory's ownership and re-runs itself as postgres; on an empty data directory it runs initdb
# (superuser POSTGRES_USER with POSTGRES_PASSWORD or the content of POSTGRES_PASSWORD_FILE), opens TCP
# with POSTGRES_HOST_AUTH_METHOD (default scram-sha-256), creates POSTGRES_DB, runs
# /docker-entrypoint-initdb.d/*.sh|*.sql against a server that listens on the socket only, stops it;
# then it execs the command (default `postgres`). Passwords are never printed.
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    if [ -n "${POSTGRES_PASSWORD:-}" ]; then
      echo 'docker-entrypoint.sh: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE, not both' >&2
      exit 1
    fi
    POSTGRES_PASSWORD=$(<"$POSTGRES_PASSWORD_FILE")
  fi
  export POSTGRES_USER=${POSTGRES_USER:-postgres}
  export POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
  auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    echo 'docker-entrypoint.sh: the database is uninitialized and the superuser password is not set:' >&2
    echo '  set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (or POSTGRES_HOST_AUTH_METHOD=trust)' >&2
    exit 1
  fi

  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of options, as in the official image
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") ${POSTGRES_INITDB_ARGS:-}
  printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

  export PGPASSWORD=${POSTGRES_PASSWORD:-}
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
  psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres)
  if [ "$POSTGRES_DB" != postgres ]; then
    "${psql[@]}" --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        echo "docker-entrypoint.sh: running $f"
        if [ -x "$f" ]; then "$f"; else
          # shellcheck disable=SC1090
          . "$f"
        fi
        ;;
      *.sql)
        echo "docker-entrypoint.sh: running $f"
        "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f"
        ;;
      *) ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  unset PGPASSWORD
  echo 'docker-entrypoint.sh: PostgreSQL init process complete; ready for start up.'
fi

exec "$@"
