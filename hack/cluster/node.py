"""Bring the single-node cluster up: network namespace, cgroups, certificates, containerd with the
node's images, etcd, the control plane, the kubelet, kube-proxy, then CoreDNS; each step timed.

The `up` process enters the node's network namespace after creating it, so every daemon it starts
(and every probe it makes) is inside; the daemons are detached and outlive it.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from hack.cluster import addons, cgroups, images, network, pki, processes, teardown, volume_provisioner
from hack.cluster.config import Daemon, Probe, config_files, daemons
from hack.cluster.layout import NodeLayout
from hack.cluster.timings import Timings

REQUIRED_TOOLS = (
    "prometheus",
    "containerd",
    "containerd-shim-runc-v2",
    "runc",
    "ctr",
    "ip",
    "nsenter",
    "unshare",
    "iptables",
    "mount",
    "umount",
    "gcc",
)
NODE_BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
    "coredns",
)


class ClusterError(RuntimeError):
    """The cluster could not be brought up (the message says which step and shows its log)."""


def preflight(layout: NodeLayout) -> None:
    """Fail early, naming what to install or build."""
    if os.geteuid() != 0:
        raise ClusterError("the node needs root (network namespace, cgroups, mounts)")
    missing_tools = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing_tools:
        raise ClusterError(f"missing {', '.join(missing_tools)}: run `make e2e-deps` (Debian packages)")
    missing = [name for name in NODE_BINARIES if not (layout.bin_dir / name).is_file()]
    if missing:
        raise ClusterError(f"missing {', '.join(missing)} in {layout.bin_dir}: run `make e2e-bin`")
    if not Path("/usr/lib/cni/bridge").exists():
        raise ClusterError("missing the CNI plugins in /usr/lib/cni: run `make e2e-deps`")


def write_files(layout: NodeLayout) -> None:
    for folder in (
        layout.run_dir,
        layout.config_dir,
        layout.log_dir,
        layout.pid_dir,
        layout.kubelet_dir,
        layout.containerd_dir,
        layout.etcd_dir,
        layout.cni_dir / "net.d",
    ):
        folder.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.etcd_dir, 0o700)
    pki.write_pki(layout)
    for path, text in config_files(layout).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    os.chmod(layout.admin_kubeconfig, 0o600)


def share_kubelet_root(layout: NodeLayout) -> None:
    """Make the kubelet's root folder a shared mount, so what the kubelet mounts there from its own
    mount namespace (kubelet-sandbox.sh) is seen by containerd."""
    subprocess.run(["mount", "--bind", str(layout.kubelet_dir), str(layout.kubelet_dir)], check=True)
    subprocess.run(["mount", "--make-rshared", str(layout.kubelet_dir)], check=True)


def _probe_ok(probe: Probe, layout: NodeLayout) -> bool:
    if probe.kind == "file":
        return Path(probe.target).exists()
    if probe.kind == "socket":
        if not Path(probe.target).exists():
            return False
        return (
            subprocess.run(["ctr", "--address", probe.target, "version"], capture_output=True).returncode == 0
        )
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(probe.target, timeout=5, context=context) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def start_and_wait(layout: NodeLayout, daemon: Daemon, timeout_s: float = 180.0) -> None:
    process = processes.spawn(layout, daemon)
    deadline = time.monotonic() + timeout_s
    while daemon.probe is not None and not _probe_ok(daemon.probe, layout):
        if process.poll() is not None:
            raise ClusterError(_with_log(layout, daemon.name, f"{daemon.name} exited during start-up"))
        if time.monotonic() > deadline:
            raise ClusterError(
                _with_log(
                    layout,
                    daemon.name,
                    f"{daemon.name} not ready after {timeout_s:.0f} s ({daemon.probe.target})",
                )
            )
        time.sleep(0.25)


def _with_log(layout: NodeLayout, name: str, what: str, lines: int = 30) -> str:
    log = processes.log_file(layout, name)
    tail = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else ["(no log)"]
    return f"{what}; last lines of {log}:\n" + "\n".join(tail)


def kubectl(layout: NodeLayout, *args: str, stdin: str | None = None, timeout_s: float = 120) -> str:
    result = subprocess.run(
        [str(layout.bin_dir / "kubectl"), "--kubeconfig", str(layout.admin_kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if result.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def wait_until(what: str, condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.5)


def node_ready(layout: NodeLayout) -> bool:
    try:
        node = json.loads(kubectl(layout, "get", "node", layout.node_name, "-o", "json"))
    except ClusterError:
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])


def apply_addons(layout: NodeLayout) -> None:
    items = [
        *addons.coredns_objects(layout),
        *addons.prometheus_objects(layout),
        volume_provisioner.storage_class(),
    ]
    objects = {"apiVersion": "v1", "kind": "List", "items": items}
    kubectl(layout, "apply", "--server-side", "-f", "-", stdin=json.dumps(objects))
    kubectl(
        layout,
        "-n",
        addons.NAMESPACE,
        "rollout",
        "status",
        "deployment/coredns",
        "--timeout=180s",
        timeout_s=200,
    )


def is_up(layout: NodeLayout) -> bool:
    names = [d.name for d in daemons(layout)]
    return all(processes.running_pid(layout, n) is not None for n in names) and node_ready(layout)


def up(layout: NodeLayout) -> Timings:
    """Bring the node up from nothing (anything left of an earlier one is removed first)."""
    preflight(layout)
    timings = Timings()
    left = teardown.leftovers(layout)
    if left or layout.run_dir.exists():
        timings.step("remove the previous node", lambda: _down_or_fail(layout))
    timings.step("certificates and configuration", lambda: write_files(layout))
    timings.step("network namespace", lambda: network.create(layout))
    network.enter(layout)
    timings.step("cgroups", lambda: cgroups.create(layout))
    share_kubelet_root(layout)
    timings.step("containerd", lambda: start_and_wait(layout, daemons(layout)[0]))
    timings.step(
        "node images (pause, coredns, busybox)",
        lambda: images.import_images(layout, images.node_images(layout)),
    )
    for daemon in daemons(layout)[1:]:  # after containerd and the images it needs
        timings.step(daemon.name, lambda daemon=daemon: start_and_wait(layout, daemon))  # type: ignore[misc]
    timings.step("node Ready", lambda: wait_until("the node to be Ready", lambda: node_ready(layout), 180))
    timings.step("CoreDNS, Prometheus Service, StorageClass", lambda: apply_addons(layout))
    return timings


def _down_or_fail(layout: NodeLayout) -> None:
    left = teardown.down(layout)
    if left:
        raise ClusterError("cannot remove the previous node: " + "; ".join(left))
