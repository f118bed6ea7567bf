#!/bin/sh
# Start the kubelet in the mount namespace `unshare --mount --propagation unchanged` gave it, with the
# host-wide kernel tunables it insists on shown to it as files of its own.
#
#   kubelet-sandbox.sh <tunables folder> <kubelet> <kubelet args...>
#
# Why: at start the kubelet writes vm.overcommit_memory=1, kernel.panic=10, kernel.panic_on_oops=1 and
# the keyring limits into /proc/sys unless they already hold those values (with protectKernelDefaults it
# refuses to start instead). Those settings are global: on a machine shared with other work, a test
# cluster must not turn a kernel oops into a reboot. The folder holds one file per tunable, named as
# sysctl names it (vm.overcommit_memory) and holding the value the kubelet expects; each is bind-mounted
# read-only over its /proc/sys entry here, so the kubelet finds nothing to change. Only this mount
# namespace sees them. The kubelet's root folder is a shared mount (node.py makes it so), so the volumes
# the kubelet mounts there still propagate to containerd, which runs in the host's mount namespace.
set -eu
tunables=$1
shift
mount --make-rprivate /proc
for file in "$tunables"/*; do
    target=/proc/sys/$(basename "$file" | tr . /)
    mount --bind "$file" "$target"
    mount -o remount,bind,ro "$target"
done
exec "$@"
