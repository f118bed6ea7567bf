# Helpers for building binaries from Go wrapper modules into a stamped cache folder (sourced by
# hack/k8s/build.sh, hack/tools/build.sh and hack/cluster/controllers/build.sh). The caller sets BIN_DIR
# and LOG_PREFIX.
#
# A binary is skipped when it exists and the stamp recorded for it in $BIN_DIR/VERSIONS matches
# (version + hash of its wrapper go.mod/go.sum), so a warm run costs ~nothing and needs no network.

log() { printf '%s: %s\n' "$LOG_PREFIX" "$*"; }
die() { printf '%s: ERROR: %s\n' "$LOG_PREFIX" "$*" >&2; exit 1; }

# Version of a module as required in a wrapper go.mod (no network needed).
modver() { # <go.mod> <module path>
    awk -v m="$2" '($1 == m) { print $2; exit } ($1 == "require" && $2 == m) { print $3; exit }' "$1"
}
# Stamp = version + short hash of the wrapper's go.mod and go.sum.
stamp() { # <wrapper dir> <version>
    printf '%s %s' "$2" "$(cat "$1/go.mod" "$1/go.sum" | sha256sum | cut -c1-12)"
}
recorded() { # <binary name>
    [ -f "$BIN_DIR/VERSIONS" ] || return 0
    awk -v n="$1" '($1 == n) { $1 = ""; sub(/^ /, ""); print; exit }' "$BIN_DIR/VERSIONS"
}
up_to_date() { # <binary name> <stamp>
    [ -x "$BIN_DIR/$1" ] && [ "$(recorded "$1")" = "$2" ]
}
record() { # <binary name> <stamp>
    local tmp="$BIN_DIR/VERSIONS.tmp.$$"
    { [ -f "$BIN_DIR/VERSIONS" ] && awk -v n="$1" '$1 != n' "$BIN_DIR/VERSIONS"; printf '%s %s\n' "$1" "$2"; } >"$tmp"
    mv -f "$tmp" "$BIN_DIR/VERSIONS"
}
# Serialise concurrent runs (e.g. two test jobs starting at once) on $BIN_DIR/.lock.
lock_bin_dir() {
    mkdir -p "$BIN_DIR"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$BIN_DIR/.lock"
        flock 9
    fi
}
