#!/bin/bash
# Initialise $PGDATA on first start (user, password, database from the environment), then run postgres
# in the foreground. The password comes from POSTGRES_PASSWORD (a Secret in the chart), never the image.
set -euo pipefail

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "fraudops-postgres: POSTGRES_PASSWORD is not set (the chart takes it from a Secret)" >&2
        exit 1
    fi
    mkdir -p "$PGDATA"
    chmod 0700 "$PGDATA"
    password_file="$(mktemp)"
    trap 'rm -f "$password_file"' EXIT
    printf '%s' "$POSTGRES_PASSWORD" >"$password_file"
    initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$password_file" \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8
    rm -f "$password_file"
    # Any address may connect, with the password: the chart's NetworkPolicy decides who can reach the port.
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" \
        | postgres --single -D "$PGDATA" -c unix_socket_directories=/tmp postgres >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp -c port=5432 "$@"
