#!/usr/bin/env bash
# Build etcd, kube-apiserver, kubectl and kube-controller-manager from the Go module proxy into a cache
# folder, for tests that need a real Kubernetes API server (see README.md).
#
#   bash hack/k8s/build.sh            # -> <repo>/.cache/k8s/bin/{etcd,kube-apiserver,kubectl,kube-controller-manager}
#   K8S_NODE=1 bash hack/k8s/build.sh # + kubelet, kube-proxy, kube-scheduler, coredns (the node of `make e2e-cluster`)
#   K8S_BIN_DIR=/some/dir bash hack/k8s/build.sh
#
# The versions are the ones pinned in hack/k8s/apiserver/go.mod and
# hack/k8s/etcd/go.mod (single source of truth); hack/k8s/node/go.mod must require the same
# k8s.io/kubernetes, and hack/k8s/coredns/go.mod pins CoreDNS. A binary is skipped when it
# exists and the stamp recorded for it in $K8S_BIN_DIR/VERSIONS matches
# (version + hash of its wrapper go.mod/go.sum), so a warm run costs ~nothing
# and needs no network. Needs only `go` (>= the go line of the wrapper go.mod)
# and access to the Go module proxy; GOMODCACHE/GOCACHE are left at defaults.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN_DIR="${K8S_BIN_DIR:-$ROOT/.cache/k8s/bin}"

LOG_PREFIX=k8s-bin
# shellcheck source=../lib/gowrap.sh
source "$HERE/../lib/gowrap.sh"

command -v go >/dev/null 2>&1 || die "'go' not found on PATH (Go >= 1.26 is needed to build etcd/kube-apiserver/kubectl)"

K8S_DIR="$HERE/apiserver"
ETCD_DIR="$HERE/etcd"
K8S_VERSION="$(modver "$K8S_DIR/go.mod" k8s.io/kubernetes)"
ETCD_VERSION="$(modver "$ETCD_DIR/go.mod" go.etcd.io/etcd/server/v3)"
[ -n "$K8S_VERSION" ] || die "cannot read the k8s.io/kubernetes version from $K8S_DIR/go.mod"
[ -n "$ETCD_VERSION" ] || die "cannot read the go.etcd.io/etcd/server/v3 version from $ETCD_DIR/go.mod"
K8S_STAMP="$(stamp "$K8S_DIR" "$K8S_VERSION")"
ETCD_STAMP="$(stamp "$ETCD_DIR" "$ETCD_VERSION")"

# The node's binaries come from a wrapper of their own, so that adding them leaves the stamp
# (and so the cached build) of the API server's binaries alone.
NODE_DIR="$HERE/node"
COREDNS_DIR="$HERE/coredns"
NODE_BINS=()
if [ "${K8S_NODE:-0}" = "1" ]; then
    NODE_VERSION="$(modver "$NODE_DIR/go.mod" k8s.io/kubernetes)"
    [ "$NODE_VERSION" = "$K8S_VERSION" ] \
        || die "$NODE_DIR/go.mod requires k8s.io/kubernetes ${NODE_VERSION:-?}, $K8S_DIR/go.mod $K8S_VERSION: make them equal"
    NODE_STAMP="$(stamp "$NODE_DIR" "$NODE_VERSION")"
    NODE_BINS=(kubelet kube-proxy kube-scheduler)
    COREDNS_VERSION="$(modver "$COREDNS_DIR/go.mod" github.com/coredns/coredns)"
    [ -n "$COREDNS_VERSION" ] || die "cannot read the github.com/coredns/coredns version from $COREDNS_DIR/go.mod"
    COREDNS_STAMP="$(stamp "$COREDNS_DIR" "$COREDNS_VERSION")"
fi

lock_bin_dir

K8S_BINS=(kube-apiserver kubectl)
# kube-controller-manager (for namespace deletion / garbage collection in tests)
# adds ~2 min to a cold build; K8S_BUILD_KCM=0 skips it.
if [ "${K8S_BUILD_KCM:-1}" != "0" ]; then K8S_BINS+=(kube-controller-manager); fi

need_etcd=0
up_to_date etcd "$ETCD_STAMP" || need_etcd=1
need_k8s=()
for b in "${K8S_BINS[@]}"; do
    up_to_date "$b" "$K8S_STAMP" || need_k8s+=("$b")
done
need_node=()
need_coredns=0
if [ "${#NODE_BINS[@]}" -gt 0 ]; then
    for b in "${NODE_BINS[@]}"; do
        up_to_date "$b" "$NODE_STAMP" || need_node+=("$b")
    done
    up_to_date coredns "$COREDNS_STAMP" || need_coredns=1
fi

if [ "$need_etcd" = 0 ] && [ "${#need_k8s[@]}" = 0 ] && [ "${#need_node[@]}" = 0 ] && [ "$need_coredns" = 0 ]; then
    log "up to date in $BIN_DIR (etcd $ETCD_VERSION, kubernetes $K8S_VERSION${COREDNS_VERSION:+, coredns $COREDNS_VERSION})"
    exit 0
fi

export CGO_ENABLED=0   # static binaries, like the official releases; no C toolchain needed
GOFLAGS_BUILD=(-trimpath -buildvcs=false -mod=readonly)
TMP_OUT="$(mktemp -d "$BIN_DIR/.build.XXXXXX")"
trap 'rm -rf "$TMP_OUT"' EXIT
START=$SECONDS

if [ "$need_etcd" = 1 ]; then
    log "building etcd $ETCD_VERSION (go $(go env GOVERSION)) ..."
    t0=$SECONDS
    ( cd "$ETCD_DIR" && go build "${GOFLAGS_BUILD[@]}" -ldflags "-s -w" \
        -o "$TMP_OUT/etcd" go.etcd.io/etcd/server/v3 ) \
        || die "building etcd $ETCD_VERSION failed (go output above; wrapper module: $ETCD_DIR)"
    mv -f "$TMP_OUT/etcd" "$BIN_DIR/etcd"
    record etcd "$ETCD_STAMP"
    log "etcd done in $((SECONDS - t0))s"
fi

# Same version variables as kubernetes' hack/lib/version.sh sets, so that
# /version and `kubectl version` report the real release.
v="${K8S_VERSION#v}"
major="${v%%.*}"; rest="${v#*.}"; minor="${rest%%.*}"
K8S_LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    K8S_LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    K8S_LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit="
done

build_k8s() { # <wrapper dir> <stamp> <binary>...
    local dir="$1" stamp="$2"; shift 2
    local pkgs=() b t0=$SECONDS
    for b in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
    log "building $* $K8S_VERSION (go $(go env GOVERSION); cold: ~10 min on 2 cores for the API server's, ~6 min for the node's) ..."
    ( cd "$dir" && go build "${GOFLAGS_BUILD[@]}" -ldflags "$K8S_LDFLAGS" -o "$TMP_OUT/" "${pkgs[@]}" ) \
        || die "building $* $K8S_VERSION failed (go output above; wrapper module: $dir)"
    for b in "$@"; do
        mv -f "$TMP_OUT/$b" "$BIN_DIR/$b"
        record "$b" "$stamp"
    done
    log "$* done in $((SECONDS - t0))s"
}

if [ "${#need_k8s[@]}" -gt 0 ]; then build_k8s "$K8S_DIR" "$K8S_STAMP" "${need_k8s[@]}"; fi
if [ "${#need_node[@]}" -gt 0 ]; then build_k8s "$NODE_DIR" "$NODE_STAMP" "${need_node[@]}"; fi

if [ "$need_coredns" = 1 ]; then
    log "building coredns $COREDNS_VERSION ..."
    t0=$SECONDS
    ( cd "$COREDNS_DIR" && go build "${GOFLAGS_BUILD[@]}" \
        -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" \
        -o "$TMP_OUT/coredns" . ) \
        || die "building coredns $COREDNS_VERSION failed (go output above; wrapper module: $COREDNS_DIR)"
    mv -f "$TMP_OUT/coredns" "$BIN_DIR/coredns"
    record coredns "$COREDNS_STAMP"
    log "coredns done in $((SECONDS - t0))s"
fi

log "built into $BIN_DIR in $((SECONDS - START))s"
