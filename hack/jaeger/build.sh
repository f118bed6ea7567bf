#!/usr/bin/env bash
# Build Jaeger (the v2 all-in-one binary, an OpenTelemetry Collector distribution) from the Go
# module proxy into a cache folder, for the tests that check traces in a real trace store.
#
#   bash hack/jaeger/build.sh            # -> <repo>/.cache/jaeger/bin/jaeger
#   JAEGER_BIN_DIR=/some/dir bash hack/jaeger/build.sh
#
# The version is the one pinned by the `tool` line of hack/jaeger/go.mod (`go get -tool
# github.com/jaegertracing/jaeger/cmd/jaeger@vX`): Jaeger v2 is released as Go module versions
# v1.x of github.com/jaegertracing/jaeger. The binary is skipped when it exists and the stamp
# recorded beside it (version + hash of go.mod/go.sum) matches, so a warm run costs nothing and
# needs no network. Prints the binary's path on stdout.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN_DIR="${JAEGER_BIN_DIR:-$ROOT/.cache/jaeger/bin}"
STAMP_FILE="$BIN_DIR/VERSION"

log() { printf 'jaeger-bin: %s\n' "$*" >&2; }
die() { printf 'jaeger-bin: ERROR: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "'go' not found on PATH (Go >= the go line of $HERE/go.mod is needed)"

VERSION="$(awk '$1 == "github.com/jaegertracing/jaeger" { print $2; exit }' "$HERE/go.mod")"
[ -n "$VERSION" ] || die "cannot read the github.com/jaegertracing/jaeger version from $HERE/go.mod"
STAMP="$VERSION $(cat "$HERE/go.mod" "$HERE/go.sum" | sha256sum | cut -c1-12)"

mkdir -p "$BIN_DIR"
# Serialise concurrent runs (two test sessions starting at once build it once).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$BIN_DIR/.lock"
    flock 9
fi

if [ -x "$BIN_DIR/jaeger" ] && [ "$(cat "$STAMP_FILE" 2>/dev/null)" = "$STAMP" ]; then
    log "up to date in $BIN_DIR (jaeger $VERSION)"
    echo "$BIN_DIR/jaeger"
    exit 0
fi

export CGO_ENABLED=0
TMP_OUT="$(mktemp -d "$BIN_DIR/.build.XXXXXX")"
trap 'rm -rf "$TMP_OUT"' EXIT
log "building jaeger $VERSION (go $(go env GOVERSION); a cold build takes several minutes on 2 cores) ..."
t0=$SECONDS
( cd "$HERE" && go build -trimpath -buildvcs=false -mod=readonly -ldflags "-s -w" \
    -o "$TMP_OUT/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger ) \
    || die "building jaeger $VERSION failed (go output above; wrapper module: $HERE)"
mv -f "$TMP_OUT/jaeger" "$BIN_DIR/jaeger"
echo "$STAMP" >"$STAMP_FILE"
log "jaeger $VERSION built in $((SECONDS - t0))s"
echo "$BIN_DIR/jaeger"
