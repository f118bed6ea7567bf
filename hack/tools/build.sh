#!/usr/bin/env bash
# Build helm and skaffold from the Go module proxy into a cache folder (nothing else can be reached here).
#
#   bash hack/tools/build.sh                 # -> <repo>/.cache/tools/bin/{helm,skaffold}
#   bash hack/tools/build.sh helm            # only one of them
#
# Each tool has a wrapper module next to this script (helm/, skaffold/) whose go.mod pins the release and
# whose go.sum pins every dependency. A binary is rebuilt only when the hash of its wrapper's go.mod and
# go.sum differs from the stamp recorded in $TOOLS_BIN_DIR/VERSIONS (the helpers of hack/lib/gowrap.sh),
# so a warm run costs nothing and needs no network. Cold: helm about 3-4 min, skaffold about 8-10 min on two idle cores (longer when shared).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN_DIR="${TOOLS_BIN_DIR:-$ROOT/.cache/tools/bin}"
LOG_PREFIX=tools
# shellcheck source=../lib/gowrap.sh
source "$HERE/../lib/gowrap.sh"

command -v go >/dev/null 2>&1 || die "'go' not found on PATH (Go >= 1.26 builds helm and skaffold)"

# tool name -> module, command package, and the variable that `<tool> version` prints
declare -A MODULE=([helm]=helm.sh/helm/v3 [skaffold]=github.com/GoogleContainerTools/skaffold/v2)
declare -A COMMAND=([helm]=helm.sh/helm/v3/cmd/helm [skaffold]=github.com/GoogleContainerTools/skaffold/v2/cmd/skaffold)
declare -A VERSION_VAR=([helm]=helm.sh/helm/v3/internal/version.version
                        [skaffold]=github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.version)

lock_bin_dir  # concurrent runs (two test jobs) wait for each other

tools=("$@")
[ "${#tools[@]}" -gt 0 ] || tools=(helm skaffold)
export CGO_ENABLED=0
for tool in "${tools[@]}"; do
    [ -n "${MODULE[$tool]:-}" ] || die "unknown tool '$tool' (helm or skaffold)"
    wrapper="$HERE/$tool"
    version="$(modver "$wrapper/go.mod" "${MODULE[$tool]}")"
    [ -n "$version" ] || die "cannot read the ${MODULE[$tool]} version from $wrapper/go.mod"
    want="$(stamp "$wrapper" "$version")"
    if up_to_date "$tool" "$want"; then
        log "$tool $version up to date in $BIN_DIR"
        continue
    fi
    log "building $tool $version (go $(go env GOVERSION)) ..."
    t0=$SECONDS
    ( cd "$wrapper" && go build -trimpath -buildvcs=false -mod=readonly \
        -ldflags "-s -w -X ${VERSION_VAR[$tool]}=$version" -o "$BIN_DIR/$tool.partial" "${COMMAND[$tool]}" ) \
        || die "building $tool $version failed (go output above; wrapper module: $wrapper)"
    mv -f "$BIN_DIR/$tool.partial" "$BIN_DIR/$tool"
    record "$tool" "$want"
    log "$tool $version built in $((SECONDS - t0))s"
done
