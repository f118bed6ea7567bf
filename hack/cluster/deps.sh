#!/usr/bin/env bash
# Debian packages the e2e node needs (installed once; a no-op when they are there):
# containerd and runc (shared with docker.io's when it is installed: the node runs its own containerd
# on its own socket and folders), the CNI plugins, iptables for kube-proxy, busybox-static for the smoke
# test image, gcc and libc6-dev for the pause binary. No service is started: nothing here is enabled.
set -euo pipefail

PACKAGES=(containerd runc containernetworking-plugins iptables iproute2 util-linux mount busybox-static gcc libc6-dev
          binutils)
missing=()
for package in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

[[ $(id -u) -eq 0 ]] || { echo "error: installing ${missing[*]} needs root" >&2; exit 1; }
# A policy-rc.d that answers 101 keeps the packages' post-install scripts from starting services.
POLICY=/usr/sbin/policy-rc.d
OURS=0
if [[ ! -e $POLICY ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    OURS=1
fi
trap '[[ $OURS -eq 1 ]] && rm -f "$POLICY"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends "${missing[@]}" >&2 || {
    apt-get -o DPkg::Lock::Timeout=900 update -q >&2
    apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends "${missing[@]}" >&2
}
