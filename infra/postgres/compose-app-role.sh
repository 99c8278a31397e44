#!/usr/bin/env bash
# docker-compose.yml: run once by the postgres image when it makes the cluster (/docker-entrypoint-initdb.d),
# as the superuser over the image's temporary local server. Creates the role the region connects as —
# a login role, not a superuser, owning the region's database — with its password from the mounted
# secret (psql reads the file itself: the password is never on a command line). It may read every
# session in pg_stat_activity: the region's relay reads the oldest open transaction of its database.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres <<'SQL'
\set app_password `head -n 1 "${HOTHOT_SECRETS_DIR:-/run/secrets}/postgres-app-password"`
CREATE ROLE hothot LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_password';
GRANT pg_read_all_stats TO hothot;
ALTER DATABASE hothot OWNER TO hothot;
SQL
