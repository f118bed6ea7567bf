"""Where the single-node cluster of `make e2e-cluster` lives: its names, addresses, ports and paths.

Every part of the node derives its settings from one `NodeLayout`, so a name or an address is written
down once. The node runs in a network namespace of its own (``name``): the control plane, containerd,
the kubelet, kube-proxy and every pod. The host reaches it only through one veth pair on a /30
(``host_ip`` <-> ``node_ip``); the namespace has no default route, so no container traffic can leave it.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# The images the node needs before any chart is installed: all built here (see images.py), none pulled.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10.1"
COREDNS_IMAGE = "fraudops.local/coredns:v1.15.0"
BUSYBOX_IMAGE = "fraudops.local/busybox:e2e"


@dataclass(frozen=True)
class NodeLayout:
    """The node's names, addresses and folders (pure data; nothing here touches the machine)."""

    repo: Path = REPO_ROOT
    name: str = "fraudops-e2e"  # network namespace, cgroup root, node name, CNI network and host veth
    host_ip: str = "10.203.0.1"  # host end of the veth pair
    node_ip: str = "10.203.0.2"  # node end: the node's InternalIP, the API server's advertised address
    link_prefix: int = 30
    pod_cidr: str = "10.244.0.0/24"
    cluster_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/16"
    kubernetes_service_ip: str = "10.96.0.1"
    dns_service_ip: str = "10.96.0.10"
    cluster_domain: str = "cluster.local"
    apiserver_port: int = 6443
    etcd_port: int = 2379
    etcd_peer_port: int = 2380
    kubelet_port: int = 10250
    node_veth: str = "eth0"  # inside the namespace, so the usual name cannot clash
    service_dummy: str = "svc0"  # a bridge without ports carrying the route to the service range (network.py)
    bridge: str = "cni0"

    # ---------------------------------------------------------------- names

    @property
    def node_name(self) -> str:
        return self.name

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.name

    @property
    def host_veth(self) -> str:
        return self.name[:15]  # interface names are at most 15 bytes

    @property
    def cgroup_root(self) -> str:
        """The kubelet's --cgroup-root; the node's own daemons sit in ``<root>/daemons``."""
        return f"/{self.name}"

    @property
    def apiserver_url(self) -> str:
        return f"https://{self.node_ip}:{self.apiserver_port}"

    # ---------------------------------------------------------------- paths

    @property
    def run_dir(self) -> Path:
        return self.repo / ".run" / "cluster"

    @property
    def bin_dir(self) -> Path:
        env = os.environ.get("K8S_BIN_DIR")
        return Path(env) if env else self.repo / ".cache" / "k8s" / "bin"

    @property
    def controllers_bin_dir(self) -> Path:
        """KServe's and KEDA's binaries (hack/cluster/controllers/build.sh)."""
        env = os.environ.get("CONTROLLERS_BIN_DIR")
        return Path(env) if env else self.repo / ".cache" / "cluster" / "bin"

    @property
    def images_dir(self) -> Path:
        """Built image archives, kept between clusters (cache)."""
        return self.repo / ".cache" / "cluster" / "images"

    @property
    def pki_dir(self) -> Path:
        return self.run_dir / "pki"

    @property
    def config_dir(self) -> Path:
        return self.run_dir / "config"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def pid_dir(self) -> Path:
        return self.run_dir / "pids"

    @property
    def containerd_dir(self) -> Path:
        return self.run_dir / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.containerd_dir / "containerd.sock"

    @property
    def kubelet_dir(self) -> Path:
        return self.run_dir / "kubelet"

    @property
    def etcd_dir(self) -> Path:
        return self.run_dir / "etcd"

    @property
    def cni_dir(self) -> Path:
        return self.run_dir / "cni"

    @property
    def admin_kubeconfig(self) -> Path:
        """The kubeconfig for users and tests (cluster-admin, server at the node's address)."""
        return self.run_dir / "kubeconfig"

    @property
    def cri_sandboxes_dir(self) -> Path:
        """containerd's CRI keeps one folder per pod sandbox here (named by the sandbox id)."""
        return self.containerd_dir / "root" / "io.containerd.grpc.v1.cri" / "sandboxes"


def cidr_address(cidr: str, index: int) -> str:
    """The `index`-th address of an IPv4 CIDR (``cidr_address("10.244.0.0/24", 1) == "10.244.0.1"``)."""
    network = ipaddress.ip_network(cidr)
    if not 0 <= index < network.num_addresses:
        raise ValueError(f"{cidr} has no address number {index}")
    return str(network.network_address + index)
