"""Missing dependencies are a condition, not a crash loop: an API server without the KServe and KEDA CRDs,
with the operator started the way a user starts it (`fraudops operator run`, as a separate process)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO_ROOT
from tests.k8s.cluster import Cluster, condition
from tests.k8s.conftest import (
    OUR_CRDS,
    TICK_S,
    install_crds,
    start_server,
    upstream_crd_folders,
    wait_for_counter,
)
from tests.k8s.objects import CANDIDATE, fraud_model

pytestmark = pytest.mark.k8s

# `fraudops operator run`: the same Typer app main.py registers as `operator`, invoked directly.
OPERATOR_COMMAND = [
    sys.executable,
    "-c",
    "import sys; from fraudops_cli.operate import app; app(sys.argv[1:])",
    "run",
    "--namespace",
    "fraud",
]


@pytest.fixture(scope="module")
def bare_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Our CRDs and Strimzi's, but no KServe and no KEDA."""
    server = start_server(tmp_path_factory.mktemp("bare-kube"))
    try:
        install_crds(server, [OUR_CRDS, *upstream_crd_folders(("strimzi",))])
        yield Cluster(server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def metrics_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def reconciles(metrics_port: int, namespace: str) -> float:
    """The operator process's own count of finished FraudModel reconciles in `namespace`."""
    try:
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    except httpx.TransportError:
        return 0.0  # not serving yet
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "fraudops_operator_reconciles_total"
        and sample.labels == {"kind": "FraudModel", "namespace": namespace}
    )


@pytest.fixture(scope="module")
def operator_process(
    bare_cluster: Cluster, metrics_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    env = {
        **os.environ,
        "KUBECONFIG": str(bare_cluster.server.kubeconfig_path),
        "FRAUDOPS_OPERATOR_TICK_S": str(TICK_S),
        "FRAUDOPS_OPERATOR_METRICS_PORT": str(metrics_port),
    }
    bare_cluster.create_namespace("fraud")
    with open(log, "wb") as out:
        process = subprocess.Popen(
            OPERATOR_COMMAND, env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        print(Path(log).read_text()[-3000:])


def test_missing_kserve_and_keda_are_a_condition_and_the_rollout_waits_for_them(
    bare_cluster: Cluster, operator_process: subprocess.Popen, metrics_port: int
) -> None:
    cluster = bare_cluster
    cluster.apply(
        fraud_model("fraud", candidate=CANDIDATE, rollout={"steps": [{"weight": 10, "pause": "1h"}]})
    )

    fm = cluster.wait_for_reason(
        "FraudModel",
        "fraud",
        "card-fraud",
        "Ready",
        "DependencyMissing",
        timeout_s=60,
        alive=[operator_process],
    )
    message = condition(fm, "Ready")["message"]
    assert "the CRD inferenceservices.serving.kserve.io is not installed (install KServe 0.20)" in message
    assert "the CRD scaledobjects.keda.sh is not installed (install KEDA 2.x)" in message
    # What can exist does; the candidate gets no traffic while it cannot be served.
    for kind, name in [
        ("KafkaTopic", "card-fraud-transactions"),
        ("ConfigMap", "card-fraud-routing"),
        ("Deployment", "card-fraud-consumer"),
    ]:
        assert cluster.get(kind, "fraud", name) is not None, f"{kind} {name}"
    wait_for_counter(lambda: reconciles(metrics_port, "fraud"), 3, "3 more reconciles of the FraudModel")
    fm = cluster.must_get("FraudModel", "fraud", "card-fraud")
    assert (fm["status"]["phase"], fm["status"]["candidateWeight"]) == ("Stable", 0)
    assert operator_process.poll() is None, "the operator exited"
    warnings = [e for e in cluster.events("fraud", "card-fraud") if e["reason"] == "DependencyMissing"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning"  # one Event, not one per tick

    install_crds(cluster.server, upstream_crd_folders(("kserve", "keda")))
    cluster.wait_for(
        lambda: (
            (cluster.get("FraudModel", "fraud", "card-fraud") or {}).get("status", {}).get("candidateWeight")
            == 10
        ),
        "the rollout to start once KServe and KEDA exist",
        timeout_s=60,
    )
    fm = cluster.must_get("FraudModel", "fraud", "card-fraud")
    assert condition(fm, "Ready")["status"] == "True"
    for name in ("card-fraud-2026-11-01", "card-fraud-2026-11-28"):
        assert cluster.get("InferenceService", "fraud", name) is not None
    assert cluster.get("ScaledObject", "fraud", "card-fraud-consumer") is not None
