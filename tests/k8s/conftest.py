"""Session fixtures for the operator tests: a real kube-apiserver with our CRDs and the upstream ones, the
operator running in-process (Kopf's KopfRunner), and a real Prometheus scraping a test exporter.

Nothing here skips: a missing binary, CRD folder or Prometheus makes the tests fail with the reason.
There is no kubelet, so pods never run; kube-controller-manager runs only the namespace and garbage
collector controllers, so owner references really cascade.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from kopf.testing import KopfRunner
from prometheus_client import REGISTRY

from tests.conftest import REPO_ROOT
from tests.k8s.apiserver import KubeApiServerError, LocalKubeApiServer
from tests.k8s.cluster import AUDIT_POLICY, Cluster
from tests.k8s.prometheus import LocalPrometheus, TrafficExporter
from tests.waiting import wait_until

# Read when Kopf imports the handlers (the timer interval is fixed at decoration): fast ticks for tests,
# whatever the environment says (a test that waits a number of ticks must know how long one is).
TICK_S = 0.5
os.environ["FRAUDOPS_OPERATOR_TICK_S"] = str(TICK_S)

# The workplace's shared copy when it sits next to the repository, else the verbatim copy vendored
# in third_party/ (so a clone anywhere, as CI makes, still tests against the real upstream CRDs).
SHARED_CRDS = REPO_ROOT.parent / "shared" / "crds"
VENDORED_CRDS = REPO_ROOT / "third_party" / "upstream-crds"
UPSTREAM_CRDS = SHARED_CRDS if SHARED_CRDS.is_dir() else VENDORED_CRDS
UPSTREAM_CRD_FOLDERS = ("kserve", "keda", "strimzi", "prometheus-operator")
OUR_CRDS = REPO_ROOT / "manifests" / "crds"


def upstream_crd_folders(names: tuple[str, ...] = UPSTREAM_CRD_FOLDERS) -> list[Path]:
    folders = [UPSTREAM_CRDS / name for name in names]
    missing = [str(f) for f in folders if not any(f.glob("*.yaml"))]
    if missing:
        pytest.fail(
            f"upstream CRDs not found: {', '.join(missing)}. The tests install the real KServe, KEDA, "
            f"Strimzi and Prometheus Operator CRDs from ../shared/crds or third_party/upstream-crds; "
            f"restore that folder (see its SOURCES.md).",
            pytrace=False,
        )
    return folders


def start_server(run_dir: Path, controller_manager: bool = False, audit: bool = False) -> LocalKubeApiServer:
    args: dict[str, str] = {}
    if audit:
        policy = run_dir / "audit-policy.json"
        policy.write_bytes(orjson.dumps(AUDIT_POLICY))
        args = {
            "audit-policy-file": str(policy),
            "audit-log-path": str(run_dir / "audit.log"),
            "audit-log-format": "json",
            "audit-log-mode": "blocking",
        }
    try:
        return LocalKubeApiServer(controller_manager=controller_manager, apiserver_args=args).start()
    except KubeApiServerError as exc:
        pytest.fail(f"cannot start the test kube-apiserver: {exc}", pytrace=False)


def install_crds(server: LocalKubeApiServer, folders: list[Path]) -> None:
    """Apply CRD folders (server-side: the KServe CRD is too big for client-side apply) and wait until
    every one is Established."""
    names: list[str] = []
    for folder in folders:
        output = server.kubectl("apply", "--server-side", "-f", str(folder), "-o", "name").stdout
        names += [
            line.rsplit("/", 1)[1] for line in output.split() if line.startswith("customresourcedefinition")
        ]
    # Polled here: `kubectl wait` gives up on a CRD whose status has no conditions yet.
    pending = set(names)

    def all_established() -> bool:
        pending.difference_update([name for name in pending if _established(server, name)])
        return not pending

    wait_until(all_established, 60, lambda: f"CRDs {sorted(pending)} to be Established", interval_s=0.1)


def _established(server: LocalKubeApiServer, name: str) -> bool:
    status, body = server.request(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    conditions = (orjson.loads(body).get("status") or {}).get("conditions") or [] if status == 200 else []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


class OperatorRunner:
    """The operator in this process (KopfRunner, standalone, all namespaces); stoppable and restartable."""

    ARGS = ("run", "--standalone", "--all-namespaces", "-m", "fraudops_operator.handlers")

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self._runner: KopfRunner | None = None
        self.logs: list[str] = []

    def start(self) -> None:
        os.environ["KUBECONFIG"] = str(self.kubeconfig)  # Kopf's login and our client both read it
        self._runner = KopfRunner(list(self.ARGS), timeout=60)
        self._runner.__enter__()

    def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            runner.__exit__(None, None, None)  # re-raises if the operator crashed
            self.logs.append(runner.output)

    def restart(self) -> None:
        self.stop()
        self.start()

    @staticmethod
    def reconciles(namespace: str, kind: str = "FraudModel") -> float:
        """Reconciles of `kind` objects in `namespace` that ran to the end (the operator's own counter)."""
        sample = REGISTRY.get_sample_value(
            "fraudops_operator_reconciles_total", {"kind": kind, "namespace": namespace}
        )
        return sample or 0.0

    def wait_for_reconciles(
        self, namespace: str, count: int, kind: str = "FraudModel", timeout_s: float = 30
    ) -> None:
        """Until `count` more reconciles have run in `namespace` (so "nothing changed" means a tick ran)."""
        wait_for_counter(
            lambda: self.reconciles(namespace, kind), count, f"{count} reconciles in {namespace}", timeout_s
        )


def wait_for_counter(read: Callable[[], float], count: int, what: str, timeout_s: float = 30) -> None:
    """Until the counter `read` returns has grown by `count` from now."""
    target = read() + count
    wait_until(lambda: read() >= target, timeout_s, what, interval_s=0.05)


@pytest.fixture(scope="session")
def kube_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kube")


@pytest.fixture(scope="session")
def kube(kube_dir: Path) -> Iterator[LocalKubeApiServer]:
    """The shared API server: our CRDs, the upstream ones, an audit log, and the GC controller."""
    folders = upstream_crd_folders()
    server = start_server(kube_dir, controller_manager=True, audit=True)
    try:
        install_crds(server, [OUR_CRDS, *folders])
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cluster(kube: LocalKubeApiServer, kube_dir: Path) -> Cluster:
    return Cluster(kube, kube_dir / "audit.log")


@pytest.fixture(scope="session")
def operator(kube: LocalKubeApiServer) -> Iterator[OperatorRunner]:
    previous = os.environ.get("KUBECONFIG")
    assert kube.kubeconfig_path is not None
    runner = OperatorRunner(kube.kubeconfig_path)
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous


@pytest.fixture(scope="session")
def exporter() -> Iterator[TrafficExporter]:
    feed = TrafficExporter().start()
    yield feed
    feed.stop()


@pytest.fixture(scope="session")
def prometheus(exporter: TrafficExporter, cluster: Cluster) -> Iterator[LocalPrometheus]:
    try:
        server = LocalPrometheus(f"127.0.0.1:{exporter.port}").start()
    except RuntimeError as exc:
        pytest.fail(f"cannot start Prometheus: {exc}", pytrace=False)
    try:
        cluster.wait_for(
            lambda: server.query('up{job="fraudops-test"} == 1'), "Prometheus to scrape the exporter"
        )
        yield server
    finally:
        server.stop()


@pytest.fixture()
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (the controller-manager empties it)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))[:40].strip("-")
    name = f"{slug}-{secrets.token_hex(2)}"
    cluster.create_namespace(name)
    yield name
    cluster.delete_namespace(name)


@pytest.fixture()
def traffic(exporter: TrafficExporter, namespace: str) -> Iterator[TrafficExporter]:
    """The exporter, with this test's traffic stopped at the end."""
    yield exporter
    exporter.forget(namespace)
