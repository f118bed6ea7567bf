"""Tearing the node down leaves nothing behind: no process, no mount, no cgroup, no interface, no
iptables chain on the host, no CNI cache entry. Checked here from the outside (/proc, /sys, `ip`,
`iptables-save`), not with teardown's own `leftovers`.

`make e2e` runs this file last and on its own: it removes the cluster the other e2e tests use.
"""

from __future__ import annotations

import glob
import subprocess
import sys
from pathlib import Path

import pytest

from hack.cluster import processes, teardown
from tests.e2e.kube import Kube

pytestmark = pytest.mark.e2e


def _processes_mentioning(*needles: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if any(needle in text for needle in needles):
            found.append(f"{cmdline.parent.name}: {text[:200]}")
    return found


def test_down_leaves_no_process_mount_cgroup_interface_chain_or_cache_entry(kube: Kube) -> None:
    layout = kube.layout
    containerd_log = processes.log_file(layout, "containerd").read_text(errors="replace")
    sandboxes = teardown.sandbox_ids(containerd_log)
    assert sandboxes, "the suite should have run pods before tearing the node down"

    result = subprocess.run(
        [sys.executable, "-m", "hack.cluster", "down"],
        cwd=layout.repo,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr + result.stdout
    assert _processes_mentioning(str(layout.run_dir), str(layout.containerd_socket)) == []
    assert [
        line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(layout.run_dir) in line
    ] == []
    assert [p for p in glob.glob(f"/sys/fs/cgroup/*/{layout.name}")] == []
    link = subprocess.run(["ip", "link", "show", layout.host_veth], capture_output=True, text=True)
    assert link.returncode != 0, f"host interface {layout.host_veth} is still there:\n{link.stdout}"
    host_rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    assert "KUBE-" not in host_rules
    assert [p for s in sandboxes for p in glob.glob(f"/var/lib/cni/results/*-{s}-*")] == []
    assert not layout.run_dir.exists()
