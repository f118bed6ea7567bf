"""The pure parts of the e2e node (hack/cluster): its files agree with each other, its certificates
verify, its image archives are well-formed OCI layouts, and teardown reads mounts and cgroups right."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from hack.cluster import cgroups, network, pki, pod_discovery, teardown, volume_provisioner
from hack.cluster.config import config_files, daemons, pod_targets_file
from hack.cluster.images import ImageFile, ImageSpec, oci_archive
from hack.cluster.layout import NodeLayout, cidr_address


@pytest.fixture
def layout(tmp_path: Path) -> NodeLayout:
    return NodeLayout(repo=tmp_path)


def test_every_file_a_daemon_is_given_is_written_by_config_or_pki(layout: NodeLayout) -> None:
    pki.write_pki(layout)
    written = set(config_files(layout)) | set(layout.pki_dir.iterdir())
    written.add(pod_targets_file(layout))  # the one file a daemon writes for another (Prometheus)
    referenced = {
        Path(arg)
        for d in daemons(layout)
        for arg in d.argv
        if arg.startswith(str(layout.run_dir)) and Path(arg).suffix
    }
    assert referenced, "the daemons should be given files from the run folder"
    assert referenced <= written, f"never written: {sorted(map(str, referenced - written))}"


def test_every_leaf_certificate_verifies_against_its_ca(layout: NodeLayout) -> None:
    pki.write_pki(layout)
    for spec in pki.certificate_specs(layout):
        cert = x509.load_pem_x509_certificate((layout.pki_dir / f"{spec.name}.crt").read_bytes())
        ca = x509.load_pem_x509_certificate((layout.pki_dir / f"{spec.issuer}.crt").read_bytes())
        ca_key = ca.public_key()
        assert isinstance(ca_key, ec.EllipticCurvePublicKey)
        cert.verify_directly_issued_by(ca)
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert (ExtendedKeyUsageOID.SERVER_AUTH in usages) == spec.server, spec.name
        assert (ExtendedKeyUsageOID.CLIENT_AUTH in usages) == spec.client, spec.name


def test_api_server_certificate_names_every_address_clients_use(layout: NodeLayout) -> None:
    pki.write_pki(layout)
    cert = x509.load_pem_x509_certificate((layout.pki_dir / "apiserver.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    addresses = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert {layout.node_ip, layout.kubernetes_service_ip} <= addresses
    assert f"kubernetes.default.svc.{layout.cluster_domain}" in names.get_values_for_type(x509.DNSName)


def test_kubernetes_service_ip_is_the_first_of_the_service_range() -> None:
    layout = NodeLayout()
    assert cidr_address(layout.service_cidr, 1) == layout.kubernetes_service_ip


def test_the_namespace_gets_no_default_route_and_pods_cannot_reach_the_host(layout: NodeLayout) -> None:
    commands = network.namespace_commands(layout)
    routes = [c for c in commands if c[:3] == ["ip", "route", "add"]]
    assert all(c[3] != "default" and c[3] != "0.0.0.0/0" for c in routes)
    assert [
        "ip",
        "rule",
        "add",
        "from",
        layout.cluster_cidr,
        "to",
        f"{layout.host_ip}/32",
        "prohibit",
    ] in commands


def test_oci_archive_is_a_consistent_image_layout(tmp_path: Path) -> None:
    binary = tmp_path / "tool"
    binary.write_bytes(b"\x7fELF pretend")
    spec = ImageSpec(
        "example.local/tool:v1",
        [ImageFile("/bin/tool", binary), ImageFile("/bin/alias", link="tool")],
        ["/bin/tool"],
    )
    archive = oci_archive(spec)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        blobs = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    for name, data in blobs.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]
    index = json.loads(blobs["index.json"])
    entry = index["manifests"][0]
    assert entry["annotations"]["io.containerd.image.name"] == "example.local/tool:v1"
    manifest = json.loads(blobs[f"blobs/sha256/{entry['digest'].split(':')[1]}"])
    config = json.loads(blobs[f"blobs/sha256/{manifest['config']['digest'].split(':')[1]}"])
    assert config["config"]["Entrypoint"] == ["/bin/tool"]
    assert config["rootfs"]["diff_ids"] == [manifest["layers"][0]["digest"]]
    layer = blobs[f"blobs/sha256/{manifest['layers'][0]['digest'].split(':')[1]}"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile(members["bin/tool"]).read() == b"\x7fELF pretend"  # type: ignore[union-attr]
    assert members["bin/alias"].issym() and members["bin/alias"].linkname == "tool"
    assert oci_archive(spec) == archive, "the same inputs must give the same bytes (and digests)"


def test_mounts_under_lists_the_deepest_first_and_reads_escaped_paths() -> None:
    mountinfo = "\n".join(
        [
            "21 1 254:0 / / rw - ext4 /dev/vda rw",
            "90 21 0:50 / /r/.run/cluster/kubelet rw shared:5 - ext4 /dev/vda rw",
            "91 90 0:51 / /r/.run/cluster/kubelet/pods/a/volumes/x rw - tmpfs tmpfs rw",
            "92 21 0:52 / /r/.run/cluster/with\\040space rw - tmpfs tmpfs rw",
            "93 21 0:53 / /r/.run/cluster-other rw - tmpfs tmpfs rw",
        ]
    )
    found = teardown.mounts_under(mountinfo, Path("/r/.run/cluster"))
    assert found[0] == Path("/r/.run/cluster/kubelet/pods/a/volumes/x")
    assert set(found) == {
        Path("/r/.run/cluster/kubelet"),
        Path("/r/.run/cluster/kubelet/pods/a/volumes/x"),
        Path("/r/.run/cluster/with space"),
    }


def test_v1_hierarchies_are_the_cgroup_mounts_only() -> None:
    mounts = "\n".join(
        [
            "tmpfs /sys/fs/cgroup tmpfs rw 0 0",
            "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0",
            "cgroup /sys/fs/cgroup/systemd cgroup rw,name=systemd 0 0",
            "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0",
        ]
    )
    assert cgroups.v1_hierarchies(mounts) == [Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup/systemd")]


def test_sandbox_ids_are_read_from_containerds_log() -> None:
    sandbox = "20b5179a4ff07fb63843c659b51ed40f1dd6c17794ba29bf202fc3a48cf77813"
    log = (
        'time="2026-12-01T16:44:23Z" level=info msg="RunPodSandbox for &PodSandboxMetadata{Name:web,Uid:1,'
        f'Namespace:e2e,Attempt:0,}} returns sandbox id \\"{sandbox}\\""\n'
        'time="2026-12-01T16:44:24Z" level=info msg="StartContainer for \\"abc\\" returns successfully"\n'
    )
    assert teardown.sandbox_ids(log) == {sandbox}


def test_pod_targets_carry_the_labels_kubernetes_sd_would_give() -> None:
    running = {
        "metadata": {
            "namespace": "fraud",
            "name": "card-v2-predictor-0",
            "labels": {"serving.kserve.io/inferenceservice": "card-v2"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"},
        },
        "spec": {"nodeName": "fraudops-e2e"},
        "status": {"phase": "Running", "podIP": "10.244.0.9"},
    }
    pending = {"metadata": {"namespace": "fraud", "name": "new"}, "status": {"phase": "Pending"}}

    groups = pod_discovery.pod_target_groups([pending, running])

    assert len(groups) == 1
    assert groups[0]["targets"] == ["10.244.0.9"]
    labels = groups[0]["labels"]
    assert labels["__meta_kubernetes_pod_label_serving_kserve_io_inferenceservice"] == "card-v2"
    assert labels["__meta_kubernetes_pod_annotation_prometheus_io_port"] == "8080"
    assert labels["__meta_kubernetes_namespace"] == "fraud"


def test_a_pending_claim_of_the_local_class_gets_a_host_path_volume_bound_to_it(tmp_path: Path) -> None:
    def claim(name: str, phase: str, storage_class: str | None, volume: str = "") -> dict[str, object]:
        spec: dict[str, object] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "volumeName": volume,
        }
        if storage_class:
            spec["storageClassName"] = storage_class
        return {
            "metadata": {"namespace": "fraud", "name": name, "uid": f"uid-{name}"},
            "spec": spec,
            "status": {"phase": phase},
        }

    claims = [
        claim("models", "Pending", "local"),
        claim("bound", "Bound", "local", "pvc-x"),
        claim("other", "Pending", "fast-ssd"),
    ]

    volumes = volume_provisioner.volumes_to_create(claims, tmp_path)

    assert [v["metadata"]["name"] for v in volumes] == ["pvc-uid-models"]
    spec = volumes[0]["spec"]
    assert spec["claimRef"] == {"namespace": "fraud", "name": "models", "uid": "uid-models"}
    assert spec["hostPath"]["path"] == str(tmp_path / "pvc-uid-models")
    assert spec["capacity"] == {"storage": "1Gi"}


def test_keda_gets_a_certificate_secret_its_rotator_keeps(layout: NodeLayout) -> None:
    """KEDA's rotator (open-policy-agent/cert-controller) keeps a secret whose CA verifies as `KEDA` and
    whose certificate verifies, for server and client use, as each KEDA Service; otherwise it writes its
    own and exits, and every KEDA pod restarts once on a fresh install."""
    from cryptography.x509 import DNSName
    from cryptography.x509.verification import PolicyBuilder, Store

    from hack.cluster import operators

    names = (
        "keda-operator",
        "keda-metrics-apiserver.keda.svc",
        "keda-admission-webhooks.keda.svc.cluster.local",
    )
    rendered = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {"template": {"spec": {"containers": [{"name": name}]}}},
        }
        for name in operators.KEDA_PARTS
    ]
    secret = next(
        o
        for o in operators.keda_objects(rendered, pki.certificates_with_own_ca(operators.KEDA_CA_NAME, names))
        if o["kind"] == "Secret"
    )
    assert secret["metadata"] == {"name": "kedaorg-certs", "namespace": "keda"}
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert set(data) == {"ca.crt", "ca.key", "tls.crt", "tls.key"}
    # The rotator reads the CA key with Go's x509.ParsePKCS1PrivateKey: PKCS #1 RSA, nothing else.
    assert data["ca.key"].startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    ca = x509.load_pem_x509_certificate(data["ca.crt"])
    leaf = x509.load_pem_x509_certificate(data["tls.crt"])
    store = Store([ca])
    # Go verifies the self-signed CA as a leaf named KEDA (the webpki policy here refuses a CA as leaf).
    ca.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        DNSName
    ) == ["KEDA"]
    for name in names:
        PolicyBuilder().store(store).build_server_verifier(DNSName(name)).verify(leaf, [])
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc > dt.timedelta(days=90)  # its lookahead


def test_the_pods_weigh_one_busy_host_process_per_cpu_of_the_node() -> None:
    assert cgroups.node_cpu_shares(2) == 2048
    assert cgroups.node_cpu_shares(1) == 1024
