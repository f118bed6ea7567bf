"""Take the node down and prove that nothing of it is left: no process, no mount, no cgroup, no network
namespace (and so none of its interfaces and iptables rules), no host interface, no CNI cache entry.

`leftovers` is the check (`down` ends with it and fails when it finds anything); `mounts_under` is the
pure part of reading /proc/self/mountinfo.
"""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
import time
from pathlib import Path

from hack.cluster import cgroups, network, processes
from hack.cluster.config import daemons
from hack.cluster.layout import NodeLayout
from hack.cluster.timings import Timings

CNI_RESULTS = "/var/lib/cni/results"
_SANDBOX_CREATED = re.compile(r'returns sandbox id \\+"([0-9a-f]{64})')


def stop_order(layout: NodeLayout) -> list[str]:
    """The daemons to stop gently, last started first; containerd is not among them (the cgroup tree,
    containers included, is killed after)."""
    return [d.name for d in reversed(daemons(layout)) if d.name != "containerd"]


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


def sandbox_ids(containerd_log: str) -> set[str]:
    """Every pod sandbox containerd reported creating, from its log (pure)."""
    return set(_SANDBOX_CREATED.findall(containerd_log))


def cni_cache_entries(layout: NodeLayout) -> list[Path]:
    """What libcni cached for the node's pods in /var/lib/cni/results, a fixed folder containerd 1.6
    cannot move: ``<network>-<sandbox id>-<interface>`` for the node's bridge network and for the
    loopback network containerd gives every sandbox (containerd leaves the loopback ones behind even
    when a pod is deleted normally). Found by the ids of the sandboxes this node's containerd made
    (its log lists every one), so nobody else's entries are touched."""
    log = processes.log_file(layout, "containerd")
    ids = sandbox_ids(log.read_text(errors="replace")) if log.exists() else set()
    if layout.cri_sandboxes_dir.is_dir():
        ids.update(p.name for p in layout.cri_sandboxes_dir.iterdir())
    found = {Path(p) for sandbox in ids for p in glob.glob(f"{CNI_RESULTS}/*-{sandbox}-*")}
    found.update(Path(p) for p in glob.glob(f"{CNI_RESULTS}/{layout.name}-*"))
    return sorted(found)


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
    found += [f"CNI cache entry {path}" for path in cni_cache_entries(layout)]
    found += [f"iptables chain {chain} in the host's namespace" for chain in host_iptables_chains()]
    found += [
        f"daemon {name} (pid {pid})"
        for name in ("containerd", *stop_order(layout))
        if (pid := processes.running_pid(layout, name)) is not None
    ]
    return found


def _wait_for_namespace_gone(layout: NodeLayout, timeout_s: float = 30) -> None:
    # The namespace goes once nothing holds it; the kernel frees its interfaces a moment later.
    deadline = time.monotonic() + timeout_s
    while network.host_link_exists(layout) and time.monotonic() < deadline:
        time.sleep(0.2)


def down(layout: NodeLayout, keep_logs_in: Path | None = None) -> list[str]:
    """Stop and remove the node; return what could not be removed (see `leftovers`)."""
    timings = Timings()
    timings.step("stop the daemons", lambda: processes.stop(layout, stop_order(layout)))
    timings.step("kill the containers and containerd", lambda: processes.kill_tree(layout))
    processes.stop(layout, ("containerd",))  # already killed with the tree; clears its pid file
    timings.step("unmount", lambda: unmount_all(layout.run_dir))
    timings.step("remove the cgroups", lambda: cgroups.remove(layout))
    timings.step("network namespace gone", lambda: _wait_for_namespace_gone(layout))
    for path in cni_cache_entries(layout):
        path.unlink(missing_ok=True)
    if keep_logs_in is not None and layout.log_dir.is_dir():
        shutil.rmtree(keep_logs_in, ignore_errors=True)
        shutil.copytree(layout.log_dir, keep_logs_in)
    left = leftovers(layout)
    if not left:
        shutil.rmtree(layout.run_dir, ignore_errors=True)
    return left
