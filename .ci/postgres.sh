#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests, on 127.0.0.1 only. Idempotent: a second run reuses
# the running server. Logs go to stderr; stdout is the URL alone, so that
#     export CTXENGINE_TEST_POSTGRES_URL="$(.ci/postgres.sh)"
# is the whole local setup. Stop it with: .ci/postgres.sh stop
#
# Installs Debian's `postgresql` package when no server binaries are found (needs root),
# then runs its own cluster (not Debian's `main` one) in $CTXENGINE_PG_DATA, as the
# `postgres` user when run as root (PostgreSQL refuses to run as root).
set -euo pipefail

PORT="${CTXENGINE_PG_PORT:-55432}"
DATA="${CTXENGINE_PG_DATA:-/var/tmp/ctxengine-pg-$PORT}"
PGUSER_NAME=ctxengine
PGPASS=ctxengine
PGDB=ctxengine
URL="postgresql://$PGUSER_NAME:$PGPASS@127.0.0.1:$PORT/$PGDB"

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -z "$dir" ] && command -v pg_config >/dev/null 2>&1; then
        dir="$(pg_config --bindir)"
    fi
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; fi
}

BINDIR="$(find_bindir)"
if [ -z "$BINDIR" ]; then
    if [ "$(id -u)" != 0 ]; then
        log "PostgreSQL is not installed; run: sudo apt-get install -y postgresql"
        exit 1
    fi
    log "installing postgresql (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    BINDIR="$(find_bindir)"
    [ -n "$BINDIR" ] || { log "postgresql installed but initdb not found"; exit 1; }
fi

# PostgreSQL will not run as root: do everything as `postgres` then.
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
    as_pg() { runuser -u postgres -- "$@"; }
    OWNER=postgres
else
    as_pg() { "$@"; }
    OWNER="$(id -un)"
fi

ready() { "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT"; }

if [ "${1:-}" = "stop" ]; then
    if [ -f "$DATA/PG_VERSION" ]; then as_pg "$BINDIR/pg_ctl" -D "$DATA" -m fast stop >&2 || true; fi
    exit 0
fi

if ! ready; then
    if [ ! -f "$DATA/PG_VERSION" ]; then
        log "initdb in $DATA"
        mkdir -p "$DATA"
        chown "$OWNER" "$DATA"
        chmod 700 "$DATA"
        pwfile="$(mktemp)"
        printf '%s\n' "$PGPASS" >"$pwfile"
        chown "$OWNER" "$pwfile"
        as_pg "$BINDIR/initdb" -D "$DATA" -U "$PGUSER_NAME" --pwfile="$pwfile" \
            --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >&2
        rm -f "$pwfile"
        # Loopback only; the socket lives in the data directory so no system path is needed.
        cat >>"$DATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DATA'
max_connections = 200
EOF
    fi
    log "starting the server on 127.0.0.1:$PORT"
    as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 start >&2
fi

for _ in $(seq 1 60); do
    ready && break
    sleep 0.5
done
ready || { log "the server on port $PORT does not accept connections (see $DATA/server.log)"; exit 1; }

# The database may be missing on a cluster whose first run was interrupted.
if ! PGPASSWORD="$PGPASS" "$BINDIR/psql" -h 127.0.0.1 -p "$PORT" -U "$PGUSER_NAME" -d "$PGDB" \
        -tAc 'SELECT 1' >/dev/null 2>&1; then
    if ! PGPASSWORD="$PGPASS" "$BINDIR/psql" -h 127.0.0.1 -p "$PORT" -U "$PGUSER_NAME" -d postgres \
            -tAc "CREATE DATABASE $PGDB" >&2; then
        log "port $PORT answers but not with the $PGUSER_NAME user: another server? set CTXENGINE_PG_PORT"
        exit 1
    fi
fi
log "ready: $URL"
echo "$URL"
