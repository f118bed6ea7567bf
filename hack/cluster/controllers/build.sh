#!/usr/bin/env bash
# Build the cluster's controllers from their Go modules into a stamped cache (see hack/lib/gowrap.sh):
# KServe's controller manager and KEDA's operator, metrics API server (adapter) and admission webhooks.
# The e2e cluster runs each of them as a locally built image.
#
#   bash hack/cluster/controllers/build.sh   # -> <repo>/.cache/cluster/bin/{kserve-manager,keda-operator,keda-adapter,keda-webhooks}
#
# Versions: the wrapper modules kserve/go.mod and keda/go.mod (their replace lines are copied from
# the upstream go.mod of that release).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
# A folder (and lock) of its own: a long controller build never holds up the Kubernetes binaries'.
BIN_DIR="${CONTROLLERS_BIN_DIR:-$ROOT/.cache/cluster/bin}"
LOG_PREFIX=controllers-bin
# shellcheck source=../../lib/gowrap.sh
source "$ROOT/hack/lib/gowrap.sh"
command -v go >/dev/null 2>&1 || die "'go' not found on PATH (Go >= 1.26 is needed)"

KSERVE_DIR="$HERE/kserve"
KEDA_DIR="$HERE/keda"
KSERVE_VERSION="$(modver "$KSERVE_DIR/go.mod" github.com/kserve/kserve)"
KEDA_VERSION="$(modver "$KEDA_DIR/go.mod" github.com/kedacore/keda/v2)"
[ -n "$KSERVE_VERSION" ] && [ -n "$KEDA_VERSION" ] || die "cannot read the KServe/KEDA versions from their go.mod"
KSERVE_STAMP="$(stamp "$KSERVE_DIR" "$KSERVE_VERSION")"
KEDA_STAMP="$(stamp "$KEDA_DIR" "$KEDA_VERSION")"

lock_bin_dir
export CGO_ENABLED=0
GOFLAGS_BUILD=(-trimpath -buildvcs=false -mod=readonly)
TMP_OUT="$(mktemp -d "$BIN_DIR/.build.XXXXXX")"
trap 'rm -rf "$TMP_OUT"' EXIT

build() { # <wrapper dir> <stamp> <ldflags> <binary name> <package>
    local dir="$1" stamp="$2" ldflags="$3" name="$4" package="$5" t0=$SECONDS
    if up_to_date "$name" "$stamp"; then
        log "$name up to date ($stamp)"
        return
    fi
    log "building $name from $package ..."
    ( cd "$dir" && go build "${GOFLAGS_BUILD[@]}" -ldflags "-s -w $ldflags" -o "$TMP_OUT/$name" "$package" ) \
        || die "building $name failed (go output above; wrapper module: $dir)"
    mv -f "$TMP_OUT/$name" "$BIN_DIR/$name"
    record "$name" "$stamp"
    log "$name done in $((SECONDS - t0))s"
}

build "$KSERVE_DIR" "$KSERVE_STAMP" "" kserve-manager github.com/kserve/kserve/cmd/manager
keda_version="-X github.com/kedacore/keda/v2/version.Version=${KEDA_VERSION#v} -X github.com/kedacore/keda/v2/version.GitCommit=$KEDA_VERSION"
for part in operator adapter webhooks; do
    build "$KEDA_DIR" "$KEDA_STAMP" "$keda_version" "keda-$part" "github.com/kedacore/keda/v2/cmd/$part"
done
