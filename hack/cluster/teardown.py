"""Take the node down and prove that nothing of it is left: no process, no mount, no cgroup, no network
namespace (and so none of its interfaces and iptables rules), no host interface, no CNI cache entry.

`leftovers` is the check (`down` ends with it and fails when it finds anything); `mounts_under` is the
pure part of reading /proc/self/mountinfo.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
import time
from pathlib import Path

from hack.cluster import cgroups, network, processes
from hack.cluster.layout import NodeLayout

# Stopped gently first, in this order (the rest of the tree is killed after).
STOP_ORDER = (
    "prometheus",
    "kube-proxy",
    "kubelet",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mounts_under(mountinfo_text: str, root: Path) -> list[Path]:
    """Mount points at or below `root`, deepest first (the order to unmount them in)."""
    prefix = str(root).rstrip("/")
    points = []
    for line in mountinfo_text.splitlines():
        fields = line.split()
        if len(fields) > 4:
            point = _unescape(fields[4])
            if point == prefix or point.startswith(prefix + "/"):
                points.append(Path(point))
    return sorted(points, key=lambda p: (len(p.parts), str(p)), reverse=True)


def _mounts(root: Path) -> list[Path]:
    return mounts_under(Path("/proc/self/mountinfo").read_text(), root)


def unmount_all(root: Path) -> None:
    """Unmount everything under `root`, deepest first; lazily when a mount is still busy."""
    for _ in range(5):  # a mount may hide another at the same point
        points = _mounts(root)
        if not points:
            return
        for point in points:
            if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "--lazy", str(point)], capture_output=True)


def host_iptables_chains() -> list[str]:
    """Chains the node's kube-proxy or kubelet would make, found in the host's own tables (must be none:
    they live in the node's namespace)."""
    chains = []
    for tool in ("iptables-save", "ip6tables-save"):
        if shutil.which(tool) is None:
            continue
        result = subprocess.run([tool], capture_output=True, text=True)
        chains += [line.split()[0][1:] for line in result.stdout.splitlines() if line.startswith(":KUBE-")]
    return chains


def leftovers(layout: NodeLayout) -> list[str]:
    """Everything of the node still on the machine, described for a person (empty: all gone)."""
    found = [f"process {pid} in the node's cgroups" for pid in sorted(cgroups.processes(layout))]
    found += [f"cgroup {root}" for root in cgroups.existing_roots(layout)]
    found += [f"mount {point}" for point in _mounts(layout.run_dir)]
    if network.host_link_exists(layout):
        found.append(f"host interface {layout.host_veth}")
    found += [f"CNI cache entry {path}" for path in sorted(glob.glob(layout.cni_cache_glob))]
    found += [f"iptables chain {chain} in the host's namespace" for chain in host_iptables_chains()]
    found += [
        f"daemon {name} (pid {pid})"
        for name in ("containerd", *STOP_ORDER)
        if (pid := processes.running_pid(layout, name)) is not None
    ]
    return found


def down(layout: NodeLayout, keep_logs_in: Path | None = None) -> list[str]:
    """Stop and remove the node; return what could not be removed (see `leftovers`)."""
    processes.stop(layout, STOP_ORDER)
    processes.kill_tree(layout)
    processes.stop(layout, ("containerd",))  # already killed with the tree; clears its pid file
    unmount_all(layout.run_dir)
    cgroups.remove(layout)
    # The namespace goes once nothing holds it; the kernel frees its interfaces a moment later.
    deadline = time.monotonic() + 30
    while network.host_link_exists(layout) and time.monotonic() < deadline:
        time.sleep(0.2)
    for path in glob.glob(layout.cni_cache_glob):
        Path(path).unlink(missing_ok=True)
    if keep_logs_in is not None and layout.log_dir.is_dir():
        shutil.rmtree(keep_logs_in, ignore_errors=True)
        shutil.copytree(layout.log_dir, keep_logs_in)
    left = leftovers(layout)
    if not left:
        shutil.rmtree(layout.run_dir, ignore_errors=True)
    return left
