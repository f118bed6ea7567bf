"""The node's network namespace: created before anything starts, entered by the `up` command itself (so
every daemon it starts inherits it), and gone, with every interface and iptables rule in it, at `down`.

Inside the namespace::

    lo
    eth0   node_ip/30   veth to the host (host end: host_ip/30, named after the cluster)
    svc0   bridge       no ports: the route to the service range, so local clients reach Service IPs
                        (kube-proxy's DNAT happens after the route lookup); a Service IP nobody serves
                        ends here. (A bridge, because this kernel has no dummy interfaces.)
    cni0   bridge       pods (created by the CNI bridge plugin)

There is no default route, and a policy rule refuses whatever pods send to the host end: container
traffic cannot leave the namespace. The host gets one route (the /30) and reaches the API server at
node_ip:6443; nothing else on the host is changed.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path

from hack.cluster.layout import NodeLayout

CLONE_NEWNET = 0x40000000


def netns_file(layout: NodeLayout) -> Path:
    """The namespace's bind mount (a file in the run folder, so `down` finds everything under one path)."""
    return layout.run_dir / "netns"


def namespace_commands(layout: NodeLayout) -> list[list[str]]:
    """The `ip`/`sysctl` commands that set up the namespace, run inside it (pure)."""
    return [
        ["ip", "link", "set", "lo", "up"],
        # Both ends are made here; the host end goes to the namespace of PID 1 (the host's).
        [
            "ip",
            "link",
            "add",
            layout.node_veth,
            "type",
            "veth",
            "peer",
            "name",
            layout.host_veth,
            "netns",
            "1",
        ],
        ["ip", "addr", "add", f"{layout.node_ip}/{layout.link_prefix}", "dev", layout.node_veth],
        ["ip", "link", "set", layout.node_veth, "up"],
        ["ip", "link", "add", layout.service_dummy, "type", "bridge"],
        ["ip", "link", "set", layout.service_dummy, "up"],
        ["ip", "route", "add", layout.service_cidr, "dev", layout.service_dummy],
        ["ip", "rule", "add", "from", layout.cluster_cidr, "to", f"{layout.host_ip}/32", "prohibit"],
        ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
        ["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1"],
    ]


def host_commands(layout: NodeLayout) -> list[list[str]]:
    """The commands that give the host its end of the veth pair (pure)."""
    return [
        ["ip", "addr", "add", f"{layout.host_ip}/{layout.link_prefix}", "dev", layout.host_veth],
        ["ip", "link", "set", layout.host_veth, "up"],
    ]


def create(layout: NodeLayout) -> None:
    """Create the namespace, pinned at `netns_file`, and wire it to the host."""
    pin = netns_file(layout)
    pin.parent.mkdir(parents=True, exist_ok=True)
    pin.touch()
    _run(["unshare", f"--net={pin}", "true"])
    for command in namespace_commands(layout):
        _run(["nsenter", f"--net={pin}", *command])
    for command in host_commands(layout):
        _run(command)


def enter(layout: NodeLayout) -> None:
    """Move the calling thread into the node's namespace. Call it from the main thread before any other
    thread starts: children started afterwards are born inside."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(netns_file(layout), os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {netns_file(layout)}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def host_link_exists(layout: NodeLayout) -> bool:
    return Path("/sys/class/net", layout.host_veth).exists()


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(command)}` failed (exit {result.returncode}): {result.stderr.strip()}"
        )
