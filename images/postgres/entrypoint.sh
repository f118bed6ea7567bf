#!/bin/bash
# Initialise $PGDATA on first start (user, password, database from the environment), then run postgres
# in the foreground. The password comes from POSTGRES_PASSWORD (a Secret in the chart), never the image.
set -euo pipefail

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "fraudops-postgres: POSTGRES_PASSWORD is not set (the chart takes it from a Secret)" >&2
        exit 1
    fi
    # Initialised in a staging folder and moved into place only when complete: a container killed half-way
    # (a liveness probe during a slow initdb) must not leave a $PGDATA whose PG_VERSION exists but whose
    # pg_hba.conf line and database were never written; the next start would skip them and refuse every
    # client ("no pg_hba.conf entry"), as it did on the e2e node.
    staging="$PGDATA.initdb"
    rm -rf "$staging"
    mkdir -p "$staging"
    chmod 0700 "$staging"
    password_file="$(mktemp)"
    trap 'rm -f "$password_file"' EXIT
    printf '%s' "$POSTGRES_PASSWORD" >"$password_file"
    initdb --pgdata="$staging" --username="$POSTGRES_USER" --pwfile="$password_file" \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8
    rm -f "$password_file"
    # Any address may connect, with the password: the chart's NetworkPolicy decides who can reach the port.
    echo "host all all all scram-sha-256" >>"$staging/pg_hba.conf"
    echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" \
        | postgres --single -D "$staging" -c unix_socket_directories=/tmp postgres >/dev/null
    rm -rf "$PGDATA"
    mv "$staging" "$PGDATA"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp -c port=5432 "$@"
