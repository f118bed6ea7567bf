"""What each part of the node is told: command lines and configuration files, as pure functions of a
`NodeLayout` (the edges in node.py write them and start the processes).

Settings that exist only because of this machine (see the README's "Kubernetes on this machine"):

* cgroup v1: the kubelet refuses it since v1.35 unless ``failCgroupV1: false``; driver ``cgroupfs``
  (no systemd here).
* No ``CAP_SYS_RESOURCE`` in the bounding set and a hard open-files limit of 20,000: nothing may lower an
  ``oom_score_adj`` or raise a hard rlimit. So containerd's CRI runs with ``restrict_oom_score_adj``
  (without it every sandbox fails: ``runc create failed: ... can't get final child's PID from pipe``),
  and the kubelet and kube-proxy keep ``oomScoreAdj: 0`` and ``maxOpenFiles: 20000``.
* No registry: images are imported into containerd; the kubelet's image garbage collection is off
  (``imageGCHighThresholdPercent: 100``) so an imported image is never deleted for want of disk.
* Shared machine: conntrack and kernel tunables are left as they are (kube-proxy's ``conntrack`` all
  zero; the kubelet's kernel tunables are answered by files in its own mount namespace, see
  kubelet-sandbox.sh), and disk-pressure evictions start only at 1% free.
"""

from __future__ import annotations

import base64
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from hack.cluster.layout import PAUSE_IMAGE, NodeLayout
from hack.cluster.pki import FRONT_PROXY_CLIENT

CNI_BIN_DIR = "/usr/lib/cni"
PROMETHEUS_PORT = 9090  # Debian's containernetworking-plugins
HERE = Path(__file__).resolve().parent

# The values the kubelet wants for the host-wide tunables it would otherwise write (kubelet
# pkg/kubelet/cm/container_manager_linux.go, setupKernelTunables). kubelet-sandbox.sh shows them to the
# kubelet in a mount namespace of its own, so the shared machine's settings stay untouched.
KUBELET_KERNEL_TUNABLES = {
    "vm.overcommit_memory": 1,
    "vm.panic_on_oom": 0,
    "kernel.panic": 10,
    "kernel.panic_on_oops": 1,
    "kernel.keys.root_maxkeys": 1000000,
    "kernel.keys.root_maxbytes": 25000000,
}


@dataclass(frozen=True)
class Probe:
    """How to tell that a daemon is ready: its Unix socket answers, its HTTP(S) path answers 200, or
    the file it writes exists."""

    kind: str  # "socket" | "http" | "https" | "file"
    target: str


@dataclass(frozen=True)
class Daemon:
    """One long-running process of the node, in start order."""

    name: str
    argv: tuple[str, ...]
    probe: Probe | None = None


def kubeconfig(layout: NodeLayout, user: str) -> dict[str, object]:
    """A kubeconfig that authenticates with the client certificate ``pki/<user>.crt``."""
    pki = layout.pki_dir

    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": layout.name,
                "cluster": {"server": layout.apiserver_url, "certificate-authority-data": b64("ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(f"{user}.crt"),
                    "client-key-data": b64(f"{user}.key"),
                },
            }
        ],
        "contexts": [{"name": layout.name, "context": {"cluster": layout.name, "user": user}}],
        "current-context": layout.name,
    }


def containerd_config(layout: NodeLayout) -> str:
    """containerd 1.6 (Debian) with every path of its own, so it never meets dockerd's containerd."""
    d = layout.containerd_dir
    return f"""version = 2
root = "{d}/root"
state = "{d}/state"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{layout.containerd_socket}"

[ttrpc]
  address = "{layout.containerd_socket}.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{d}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{layout.cni_dir}/net.d"
"""


def cni_config(layout: NodeLayout) -> dict[str, object]:
    """A bridge network for the pods, host-local addresses, and portmap for hostPort."""
    return {
        "cniVersion": "1.0.0",
        "name": layout.name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": layout.bridge,
                "isGateway": True,
                "ipMasq": False,  # nowhere to masquerade to: the namespace has no way out
                "hairpinMode": True,  # a pod reaching itself through its Service
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": layout.pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(layout.cni_dir / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def admission_config(layout: NodeLayout) -> dict[str, object]:
    """Pod Security admission: namespaces without labels get `baseline` enforced and `restricted` warned."""
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AdmissionConfiguration",
        "plugins": [
            {
                "name": "PodSecurity",
                "configuration": {
                    "apiVersion": "pod-security.admission.config.k8s.io/v1",
                    "kind": "PodSecurityConfiguration",
                    "defaults": {
                        "enforce": "baseline",
                        "enforce-version": "latest",
                        "audit": "restricted",
                        "audit-version": "latest",
                        "warn": "restricted",
                        "warn-version": "latest",
                    },
                    "exemptions": {"usernames": [], "runtimeClasses": [], "namespaces": ["kube-system"]},
                },
            }
        ],
    }


def kubelet_config(layout: NodeLayout) -> dict[str, object]:
    pki = layout.pki_dir
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": layout.node_ip,
        "port": layout.kubelet_port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "tlsCertFile": str(pki / "kubelet.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": layout.cgroup_root,
        "failCgroupV1": False,
        "failSwapOn": False,
        "oomScoreAdj": 0,
        "maxOpenFiles": 20000,
        "clusterDNS": [layout.dns_service_ip],
        "clusterDomain": layout.cluster_domain,
        "resolvConf": "",  # pods get the cluster DNS only: there is no upstream resolver to pass on
        "podLogsDir": str(layout.run_dir / "pod-logs"),
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
            "imagefs.inodesFree": "1%",
        },
        "serializeImagePulls": False,
        "registerNode": True,
        "maxPods": 110,
    }


def kube_proxy_config(layout: NodeLayout) -> dict[str, object]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(layout.config_dir / "kube-proxy.kubeconfig")},
        "hostnameOverride": layout.node_name,
        "bindAddress": layout.node_ip,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "clusterCIDR": layout.cluster_cidr,
        "oomScoreAdj": 0,
        # 0 means "leave the host's value": nf_conntrack_max is global, not per network namespace.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }


def pod_targets_file(layout: NodeLayout) -> Path:
    return layout.run_dir / "prometheus-pods.json"


def prometheus_config(layout: NodeLayout) -> dict[str, object]:
    """Prometheus (Debian's) scrapes every pod that asks for it with the usual annotations
    (``prometheus.io/scrape``, ``/port``, ``/path``: KServe sets them on predictors), and turns pod labels
    into target labels, so predictor series carry ``serving_kserve_io_inferenceservice``."""
    return {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "scrape_configs": [
            {
                "job_name": "kubernetes-pods",
                # Debian's Prometheus has no kubernetes_sd_configs: pod_discovery.py writes the same
                # __meta_kubernetes_pod_* labels into a file_sd file, so the relabelling below is unchanged.
                "file_sd_configs": [{"files": [str(pod_targets_file(layout))]}],
                "relabel_configs": [
                    {
                        "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
                        "action": "keep",
                        "regex": "true",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_phase"],
                        "action": "drop",
                        "regex": "Succeeded|Failed",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
                        "action": "replace",
                        "target_label": "__metrics_path__",
                        "regex": "(.+)",
                    },
                    {
                        "source_labels": [
                            "__meta_kubernetes_pod_ip",
                            "__meta_kubernetes_pod_annotation_prometheus_io_port",
                        ],
                        "action": "replace",
                        "regex": "(.+);(\\d+)",
                        "replacement": "$1:$2",
                        "target_label": "__address__",
                    },
                    {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                ],
            }
        ],
    }


def config_files(layout: NodeLayout) -> dict[Path, str]:
    """Every configuration file the daemons read (the PKI must exist: kubeconfigs embed it)."""
    cfg = layout.config_dir
    files = {
        cfg / "containerd.toml": containerd_config(layout),
        layout.cni_dir / "net.d" / "10-fraudops-e2e.conflist": _json(cni_config(layout)),
        cfg / "admission.json": _json(admission_config(layout)),
        cfg / "kubelet.json": _json(kubelet_config(layout)),
        cfg / "kube-proxy.json": _json(kube_proxy_config(layout)),
        cfg / "prometheus.json": _json(prometheus_config(layout)),
        layout.admin_kubeconfig: _json(kubeconfig(layout, "admin")),
    }
    for user in ("controller-manager", "scheduler", "kube-proxy", "kubelet-client"):
        files[cfg / f"{user}.kubeconfig"] = _json(kubeconfig(layout, user))
    for tunable, value in KUBELET_KERNEL_TUNABLES.items():
        files[cfg / "kubelet-tunables" / tunable] = f"{value}\n"
    return files


def _argv(binary: Path | str, flags: dict[str, str], *extra: str) -> tuple[str, ...]:
    # --name=value: a boolean flag takes its value only in this form.
    return (str(binary), *(f"--{name}={value}" for name, value in flags.items()), *extra)


def _control_plane_client(kubeconfig_file: Path) -> dict[str, str]:
    """Flags of a controller that talks to the API server with its own identity and serves /healthz."""
    return {
        "kubeconfig": str(kubeconfig_file),
        "authentication-kubeconfig": str(kubeconfig_file),
        "authorization-kubeconfig": str(kubeconfig_file),
        "leader-elect": "false",
        "bind-address": "127.0.0.1",
        "profiling": "false",
    }


def daemons(layout: NodeLayout) -> list[Daemon]:
    """The node's processes in start order (containerd first; CoreDNS runs as a pod, see addons)."""
    bin_dir, pki, cfg = layout.bin_dir, layout.pki_dir, layout.config_dir
    etcd_url = f"http://127.0.0.1:{layout.etcd_port}"
    etcd_peer_url = f"http://127.0.0.1:{layout.etcd_peer_port}"
    etcd = {
        "name": layout.name,
        "data-dir": str(layout.etcd_dir),
        "listen-client-urls": etcd_url,
        "advertise-client-urls": etcd_url,
        "listen-peer-urls": etcd_peer_url,
        "initial-advertise-peer-urls": etcd_peer_url,
        "initial-cluster": f"{layout.name}={etcd_peer_url}",
        "log-level": "warn",
    }
    apiserver = {
        "etcd-servers": etcd_url,
        "bind-address": "0.0.0.0",  # inside the node's namespace: its loopback and eth0 only
        "advertise-address": layout.node_ip,
        "secure-port": str(layout.apiserver_port),
        "service-cluster-ip-range": layout.service_cidr,
        "client-ca-file": str(pki / "ca.crt"),
        "tls-cert-file": str(pki / "apiserver.crt"),
        "tls-private-key-file": str(pki / "apiserver.key"),
        "kubelet-client-certificate": str(pki / "apiserver-kubelet-client.crt"),
        "kubelet-client-key": str(pki / "apiserver-kubelet-client.key"),
        "kubelet-preferred-address-types": "InternalIP",
        "service-account-issuer": f"https://kubernetes.default.svc.{layout.cluster_domain}",
        "service-account-key-file": str(pki / "sa.pub"),
        "service-account-signing-key-file": str(pki / "sa.key"),
        "authorization-mode": "Node,RBAC",
        "enable-admission-plugins": "NodeRestriction",
        "admission-control-config-file": str(cfg / "admission.json"),
        "allow-privileged": "false",
        # The aggregation layer (KEDA's metrics API server registers through it).
        "requestheader-client-ca-file": str(pki / "front-proxy-ca.crt"),
        "requestheader-allowed-names": FRONT_PROXY_CLIENT,
        "requestheader-username-headers": "X-Remote-User",
        "requestheader-group-headers": "X-Remote-Group",
        "requestheader-extra-headers-prefix": "X-Remote-Extra-",
        "proxy-client-cert-file": str(pki / "front-proxy-client.crt"),
        "proxy-client-key-file": str(pki / "front-proxy-client.key"),
        # Aggregated APIs and webhooks are called at their endpoints, not their Service IPs.
        "enable-aggregator-routing": "true",
        "profiling": "false",
    }
    controller_manager = {
        **_control_plane_client(cfg / "controller-manager.kubeconfig"),
        "controllers": "*",
        "use-service-account-credentials": "true",
        "service-account-private-key-file": str(pki / "sa.key"),
        "root-ca-file": str(pki / "ca.crt"),
        "cluster-signing-cert-file": str(pki / "ca.crt"),
        "cluster-signing-key-file": str(pki / "ca.key"),
        "service-cluster-ip-range": layout.service_cidr,
        "cluster-cidr": layout.cluster_cidr,
        "allocate-node-cidrs": "false",  # the CNI config holds the node's one pod range
    }
    prometheus = {
        "config.file": str(cfg / "prometheus.json"),
        "storage.tsdb.path": str(layout.run_dir / "prometheus"),
        "web.listen-address": f"{layout.node_ip}:{PROMETHEUS_PORT}",
    }
    kubelet = {
        "config": str(cfg / "kubelet.json"),
        "kubeconfig": str(cfg / "kubelet-client.kubeconfig"),
        "root-dir": str(layout.kubelet_dir),
        "cert-dir": str(layout.kubelet_dir / "pki"),
        "hostname-override": layout.node_name,
        "node-ip": layout.node_ip,
    }
    # The kubelet gets a mount namespace of its own (see kubelet-sandbox.sh); what it mounts under its
    # root folder still reaches containerd, because that folder is a shared mount.
    kubelet_sandbox = (
        "unshare",
        "--mount",
        "--propagation",
        "unchanged",
        "--",
        "/bin/sh",
        str(HERE / "kubelet-sandbox.sh"),
        str(cfg / "kubelet-tunables"),
    )
    return [
        Daemon(
            "containerd",
            ("containerd", "--config", str(cfg / "containerd.toml")),
            Probe("socket", str(layout.containerd_socket)),
        ),
        Daemon(
            "etcd", _argv(bin_dir / "etcd", etcd, "--unsafe-no-fsync"), Probe("http", f"{etcd_url}/health")
        ),
        Daemon(
            "kube-apiserver",
            _argv(bin_dir / "kube-apiserver", apiserver),
            Probe("https", f"{layout.apiserver_url}/readyz"),
        ),
        Daemon(
            "kube-controller-manager",
            _argv(bin_dir / "kube-controller-manager", controller_manager),
            Probe("https", "https://127.0.0.1:10257/healthz"),
        ),
        Daemon(
            "kube-scheduler",
            _argv(bin_dir / "kube-scheduler", _control_plane_client(cfg / "scheduler.kubeconfig")),
            Probe("https", "https://127.0.0.1:10259/healthz"),
        ),
        Daemon(
            "kubelet",
            (*kubelet_sandbox, *_argv(bin_dir / "kubelet", kubelet)),
            Probe("http", "http://127.0.0.1:10248/healthz"),
        ),
        Daemon(
            "kube-proxy",
            _argv(bin_dir / "kube-proxy", {"config": str(cfg / "kube-proxy.json")}),
            Probe("http", "http://127.0.0.1:10256/healthz"),
        ),
        Daemon(
            "volume-provisioner",
            (
                sys.executable,
                "-m",
                "hack.cluster.volume_provisioner",
                layout.apiserver_url,
                str(pki),
                str(layout.run_dir / "volumes"),
            ),
        ),
        Daemon(
            "pod-discovery",
            (
                sys.executable,
                "-m",
                "hack.cluster.pod_discovery",
                layout.apiserver_url,
                str(pki),
                str(pod_targets_file(layout)),
            ),
            Probe("file", str(pod_targets_file(layout))),
        ),
        # Pods reach it at the node's address (a selectorless Service points there, see addons.py).
        Daemon(
            "prometheus",
            _argv("prometheus", prometheus),
            Probe("http", f"http://{layout.node_ip}:{PROMETHEUS_PORT}/-/ready"),
        ),
    ]


def _json(obj: object) -> str:
    # JSON is YAML too, so every component reads these files.
    return json.dumps(obj, indent=2) + "\n"
