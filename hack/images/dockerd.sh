#!/usr/bin/env bash
# Make sure a Docker engine answers, starting Debian's dockerd when none runs, and stop only what we started.
#
#   bash hack/images/dockerd.sh start   # installs docker.io if needed; prints "started" or "running"
#   bash hack/images/dockerd.sh stop    # stops the engine only if `start` started it (pid file below)
#   bash hack/images/dockerd.sh run -- CMD...   # start, run CMD, stop what was started; CMD's exit status
#
# Needs root (as this machine's CI and sessions are). The engine logs to .run/dockerd.log.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
RUN_DIR="$ROOT/.run"
PID_FILE="$RUN_DIR/dockerd.pid"
DOCKER="${DOCKER:-docker}"

answers() { "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

case "${1:-}" in
start)
    if answers; then echo running; exit 0; fi
    if ! command -v dockerd >/dev/null 2>&1; then
        echo "dockerd: installing docker.io (Debian's Docker engine)" >&2
        apt-get -o DPkg::Lock::Timeout=900 install -y -q docker.io >&2 \
            || { apt-get -o DPkg::Lock::Timeout=900 update -q >&2 \
                 && apt-get -o DPkg::Lock::Timeout=900 install -y -q docker.io >&2; }
    fi
    mkdir -p "$RUN_DIR"
    nohup dockerd >"$RUN_DIR/dockerd.log" 2>&1 &
    echo $! >"$PID_FILE"
    for _ in $(seq 1 120); do
        if answers; then echo started; exit 0; fi
        kill -0 "$(cat "$PID_FILE")" 2>/dev/null || break
        sleep 0.5
    done
    echo "dockerd did not answer within 60 s; last lines of $RUN_DIR/dockerd.log:" >&2
    tail -n 20 "$RUN_DIR/dockerd.log" >&2
    exit 1
    ;;
stop)
    [ -f "$PID_FILE" ] || exit 0
    pid="$(cat "$PID_FILE")"
    rm -f "$PID_FILE"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.5; done
        echo "dockerd ($pid) still running 30 s after SIGTERM" >&2
        exit 1
    fi
    ;;
run)
    shift
    [ "${1:-}" = "--" ] && shift
    state="$("$0" start)"
    # Stopped on any way out, an interrupt or a CI timeout's SIGTERM included.
    if [ "$state" = started ]; then trap '"$0" stop' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; fi
    "$@"
    ;;
*)
    echo "usage: $0 start|stop|run -- CMD..." >&2
    exit 2
    ;;
esac
