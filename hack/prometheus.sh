#!/usr/bin/env bash
# Make sure a `prometheus` binary is on the PATH (the operator's k8s tests query a real one).
#
# Debian's package is the only source reachable from the build machines. It is installed
# without recommends, and without starting the packaged system service: the tests run their own
# instance on a free loopback port with a throw-away config. Prints the binary's path.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1; then
    command -v prometheus
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    SUDO=(sudo -n)
    "${SUDO[@]}" true 2>/dev/null || {
        echo "error: prometheus is not installed and installing it needs root: run 'sudo apt-get install -y --no-install-recommends prometheus'" >&2
        exit 1
    }
else
    SUDO=()
fi

# A policy-rc.d that answers 101 keeps the package's post-install from starting the system
# daemon (it would bind :9090 for nothing). Only ours is removed afterwards.
POLICY=/usr/sbin/policy-rc.d
OURS=0
if [[ ! -e $POLICY ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    OURS=1
fi
cleanup() { if [[ $OURS -eq 1 ]]; then "${SUDO[@]}" rm -f "$POLICY"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get install -y -q --no-install-recommends prometheus >&2 || {
    "${SUDO[@]}" apt-get update -q >&2
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends prometheus >&2
}
command -v prometheus
