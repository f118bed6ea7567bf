"""The node's cgroup tree (cgroup v1, one folder per mounted hierarchy): ``/<name>`` is the kubelet's
--cgroup-root (pods live in ``/<name>/kubepods``), and the node's own daemons join ``/<name>/daemons``.

So the tree holds every process the node ever started: the daemons, the containerd shims they
fork, and every container. `down` kills what is in it until it is empty, then removes the folders;
"no process left behind" is checked by the same walk.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from hack.cluster.layout import NodeLayout

CGROUP_MOUNTS = Path("/sys/fs/cgroup")
DAEMONS = "daemons"
# Where a process joins the daemons' group: the pids hierarchy is enough to find (and kill) them all.
TRACKING_HIERARCHY = "pids"


def v1_hierarchies(mounts_text: str) -> list[Path]:
    """The mount points of the cgroup v1 hierarchies listed in /proc/self/mounts text (pure)."""
    found = []
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup":
            found.append(Path(fields[1]))
    return found


def hierarchies() -> list[Path]:
    return v1_hierarchies(Path("/proc/self/mounts").read_text())


def tree_roots(layout: NodeLayout) -> list[Path]:
    """``<hierarchy>/<name>`` for every v1 hierarchy, and the unified one if runc made a folder there."""
    roots = [h / layout.cgroup_root.lstrip("/") for h in hierarchies()]
    unified = CGROUP_MOUNTS / "unified" / layout.cgroup_root.lstrip("/")
    return [*roots, unified]


def create(layout: NodeLayout) -> None:
    """Create the root in every hierarchy (the kubelet insists that --cgroup-root exists) and the
    daemons' group in the tracking one."""
    for hierarchy in hierarchies():
        root = hierarchy / layout.cgroup_root.lstrip("/")
        root.mkdir(exist_ok=True)
        if (hierarchy / "cpuset.cpus").exists():
            # A new cpuset starts with no CPUs and no memory nodes: nothing could run in it.
            for knob in ("cpuset.cpus", "cpuset.mems"):
                (root / knob).write_text((hierarchy / knob).read_text())
        if (root / "cpu.shares").exists():
            (root / "cpu.shares").write_text(str(node_cpu_shares()))
    daemons_group(layout).mkdir(exist_ok=True)


def node_cpu_shares(cpus: int | None = None) -> int:
    """The CPU weight of the pods' tree: as much as one busy host process per CPU the node offers.

    Left at the default (1024), every pod together weighs as much as one busy host process, so on a
    machine shared with builds (a load of 20-35 here) the pods got a few percent of a core: predictors
    took minutes to start and probes with a second's timeout failed."""
    return 1024 * (cpus or os.cpu_count() or 1)


def daemons_group(layout: NodeLayout) -> Path:
    return CGROUP_MOUNTS / TRACKING_HIERARCHY / layout.cgroup_root.lstrip("/") / DAEMONS


def join_daemons_group(layout: NodeLayout) -> None:
    """Move the calling process into the daemons' group (used between fork and exec)."""
    (daemons_group(layout) / "cgroup.procs").write_text(str(os.getpid()))


def _walk_bottom_up(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        return
    for dirpath, _dirnames, _files in os.walk(root, topdown=False):
        yield Path(dirpath)


def processes(layout: NodeLayout) -> set[int]:
    """Every process in the node's tree, in any hierarchy."""
    pids: set[int] = set()
    for root in tree_roots(layout):
        for group in _walk_bottom_up(root):
            try:
                text = (group / "cgroup.procs").read_text()
            except FileNotFoundError:
                continue  # removed while walking
            pids.update(int(pid) for pid in text.split())
    return pids


def remove(layout: NodeLayout) -> list[Path]:
    """Remove the tree, deepest folders first; return the folders that could not be removed."""
    left = []
    for root in tree_roots(layout):
        for group in _walk_bottom_up(root):
            try:
                group.rmdir()
            except FileNotFoundError:
                continue
            except OSError:
                left.append(group)
    return left


def existing_roots(layout: NodeLayout) -> list[Path]:
    return [root for root in tree_roots(layout) if root.exists()]
