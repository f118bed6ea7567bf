#!/usr/bin/env bash
# Build every image of the platform into the local Docker engine (`make images`).
#
#   bash hack/images/build.sh                 # all: platform, predictor, postgres, kafka
#   bash hack/images/build.sh platform kafka  # some
#
#   IMAGE_REPOSITORY (ghcr.io/fraudops)  IMAGE_TAG (the version in pyproject.toml)
#   BASE_IMAGE (default: the Debian-made base of hack/images/base.sh; set python:3.11-slim with a registry)
#   CA_BUNDLE  (/etc/ssl/certs/ca-certificates.crt) passed to pip as a build secret, never stored in a layer
#
# Needs a running engine (hack/images/dockerd.sh run -- ... starts one) and BuildKit: Debian's docker.io
# client has it built in (DOCKER_BUILDKIT=1); a newer client needs its buildx plugin. Layers are cached by
# the engine, so a rebuild after a code change redoes only the last layers.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
REPOSITORY="${IMAGE_REPOSITORY:-ghcr.io/fraudops}"
TAG="${IMAGE_TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
PYTHON="${PYTHON:-$ROOT/.cache/venv/bin/python}"

log() { printf 'images: %s\n' "$*" >&2; }

# A client that speaks BuildKit to this engine: Debian's 20.10 client has it built in; later clients
# dropped the built-in path and need buildx.
if [ -x /usr/bin/docker ] && /usr/bin/docker version --format '{{.Client.Version}}' 2>/dev/null | grep -q '^20\.10'; then
    build=(env DOCKER_BUILDKIT=1 /usr/bin/docker build)
elif docker buildx version >/dev/null 2>&1; then
    build=(docker buildx build --load)
else
    build=(env DOCKER_BUILDKIT=1 docker build)
fi
secret=()
[ -r "$CA_BUNDLE" ] && secret=(--secret "id=ca_bundle,src=$CA_BUNDLE")
base="${BASE_IMAGE:-$(bash "$HERE/base.sh" | tail -n 1)}"

build_image() { # <name> <context> <extra build args...>
    local name="$1" context="$2"; shift 2
    local t0=$SECONDS
    log "building $REPOSITORY/$name:$TAG from $base"
    "${build[@]}" --quiet --build-arg "BASE_IMAGE=$base" --tag "$REPOSITORY/$name:$TAG" "$@" "$context" >/dev/null
    log "$REPOSITORY/$name:$TAG built in $((SECONDS - t0)) s"
}

kafka_context() { # the broker's jars (resolved from Maven Central once, cached) next to images/kafka
    local libs context="$ROOT/.cache/images/kafka-context"
    libs="$("$PYTHON" -c 'from fraudops.config import Settings; from fraudops_infra.kafka import resolve_jars
print(resolve_jars(Settings()))')"
    rm -rf "$context"
    mkdir -p "$context"
    cp images/kafka/* "$context/"
    cp -al "$libs" "$context/libs" 2>/dev/null || cp -r "$libs" "$context/libs"
    rm -f "$context/libs/.complete"
    echo "$context"
}

targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(platform predictor postgres kafka)
for target in "${targets[@]}"; do
    case "$target" in
    platform) build_image fraudops . --target platform "${secret[@]}" ;;
    predictor) build_image predictor . --target predictor "${secret[@]}" ;;
    postgres) build_image postgres images/postgres ;;
    kafka) build_image kafka "$(kafka_context)" ;;
    *) echo "images: unknown image '$target' (platform, predictor, postgres, kafka)" >&2; exit 2 ;;
    esac
done
docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep "^$REPOSITORY/" | sort >&2
