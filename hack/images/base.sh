#!/usr/bin/env bash
# The images' base when no registry can be reached: Debian bookworm (minbase) with Python 3.11, made by
# mmdebstrap from Debian's own archive and imported into the local Docker engine.
#
#   bash hack/images/base.sh                # -> image $BASE_IMAGE (default fraudops-base:bookworm-<stamp>)
#
# Idempotent: nothing is done when the image exists. The root filesystem tarball is kept under
# .cache/images/ so that a pruned engine re-imports it in seconds instead of re-running mmdebstrap
# (~90 s). The stamp is a hash of the package list, so changing it makes a new base.
# Prints the image name on the last line of stdout.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates
STAMP="$(printf '%s %s minbase' "$SUITE" "$PACKAGES" | sha256sum | cut -c1-8)"
IMAGE="${BASE_IMAGE:-fraudops-base:$SUITE-$STAMP}"
TARBALL="$ROOT/.cache/images/base-$SUITE-$STAMP.tar"
DOCKER="${DOCKER:-docker}"

log() { printf 'base-image: %s\n' "$*" >&2; }

if "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
    log "$IMAGE exists"
    echo "$IMAGE"
    exit 0
fi

mkdir -p "$(dirname "$TARBALL")"
if [ ! -s "$TARBALL" ]; then
    if ! command -v mmdebstrap >/dev/null 2>&1; then
        log "installing mmdebstrap (Debian package)"
        apt-get -o DPkg::Lock::Timeout=900 install -y -q mmdebstrap >&2 \
            || { apt-get -o DPkg::Lock::Timeout=900 update -q >&2 \
                 && apt-get -o DPkg::Lock::Timeout=900 install -y -q mmdebstrap >&2; }
    fi
    log "building a $SUITE root filesystem with $PACKAGES (about 90 s)"
    # Written next to its final name and moved, so an interrupted run leaves no half tarball behind.
    mmdebstrap --quiet --format=tar --variant=minbase --include="$PACKAGES" \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        "$SUITE" "$TARBALL.partial" >&2
    mv -f "$TARBALL.partial" "$TARBALL"
fi
log "importing $TARBALL as $IMAGE"
"$DOCKER" import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' "$TARBALL" "$IMAGE" >/dev/null
echo "$IMAGE"
