#!/usr/bin/env bash
# A throwaway Chroma server for the scale-out tests, on 127.0.0.1 only. Idempotent: a second
# run reuses the running server. Logs go to stderr; stdout is the URL alone, so that
#     export CTXENGINE_TEST_CHROMA_URL="$(.ci/chroma.sh)"
# is the whole local setup. Stop it with: .ci/chroma.sh stop
#
# Runs the server that ships in the `chromadb` wheel (`chroma run`), installing the wheel from
# PyPI with the same python3 when it is missing, with its data in $CTXENGINE_CHROMA_DATA.
set -euo pipefail

PORT="${CTXENGINE_CHROMA_PORT:-58000}"
DATA="${CTXENGINE_CHROMA_DATA:-/var/tmp/ctxengine-chroma-$PORT}"
PYTHON="${PYTHON:-python3}"
URL="http://127.0.0.1:$PORT"
PIDFILE="$DATA/server.pid"
# No usage reports leave the machine.
export ANONYMIZED_TELEMETRY=False

log() { echo "chroma.sh: $*" >&2; }

ready() {
    "$PYTHON" - "$URL/api/v2/heartbeat" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()
EOF
}

if [ "${1:-}" = "stop" ]; then
    if [ -f "$PIDFILE" ]; then
        pid="$(cat "$PIDFILE")"
        kill "$pid" 2>/dev/null && log "stopped the server (pid $pid)" || true
        rm -f "$PIDFILE"
    fi
    exit 0
fi

if ! ready; then
    if ! "$PYTHON" -c "import chromadb.cli.cli" >/dev/null 2>&1; then
        log "installing chromadb (pip)"
        "$PYTHON" -m pip install -q "chromadb>=1.0,<2" >&2
    fi
    mkdir -p "$DATA"
    log "starting the server on 127.0.0.1:$PORT (data in $DATA)"
    # setsid: the server outlives this script (and the shell that runs it) until `stop`.
    setsid "$PYTHON" -c "import sys; from chromadb.cli.cli import app; sys.exit(app())" \
        run --host 127.0.0.1 --port "$PORT" --path "$DATA" \
        >"$DATA/server.log" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 120); do
        ready && break
        kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
        sleep 0.5
    done
fi

ready || { log "the server on port $PORT does not answer (see $DATA/server.log)"; exit 1; }
log "ready: $URL"
echo "$URL"
