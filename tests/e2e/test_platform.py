"""The platform on the e2e node, in the reduced form that fits CI: both charts installed with helm (the
images of `make images` imported into the node's containerd), every pod Ready under the restricted Pod
Security Standard with no restart, and one FraudModel whose KServe predictor and KEDA-scaled consumer
score a simulated stream from the in-cluster Kafka into the in-cluster PostgreSQL, every record stored
once.

The chart's seed Job trains the first model into the models volume (the FraudModel's stable version).
Kafka is the chart's bundled KRaft broker (no Strimzi operator here: its objects are only checked by the
API server in tests/k8s), PostgreSQL the chart's bundled instance.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from hack.cluster import images
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import Kube

pytestmark = pytest.mark.e2e

NAMESPACE = "fraud"
OPERATOR_NAMESPACE = "fraudops-system"
PLATFORM_IMAGES = ("fraudops", "predictor", "kafka", "postgres")
IMAGE_TAG = "0.1.0"
RECORDS = 2000
STRIMZI_CRDS = REPO_ROOT / "third_party" / "upstream-crds" / "strimzi"


def helm(kube: Kube, *args: str, timeout_s: float = 900) -> None:
    command = [
        str(kube.layout.repo / ".cache" / "tools" / "bin" / "helm"),
        "--kubeconfig",
        str(kube.layout.admin_kubeconfig),
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stderr}{result.stdout}"


def installed(kube: Kube, release: str, namespace: str) -> bool:
    result = kube.kubectl(
        "-n", namespace, "get", "secret", "-l", f"owner=helm,name={release}", "-o", "name", check=False
    )
    return bool(result.stdout.strip())


@pytest.fixture(scope="module")
def platform(kube: Kube) -> Iterator[Kube]:
    """Images imported, the operator chart and the platform chart installed, the seed model trained."""
    images.import_from_docker(
        kube.layout, [f"ghcr.io/fraudops/{name}:{IMAGE_TAG}" for name in PLATFORM_IMAGES]
    )
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": NAMESPACE,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
        }
    )
    if not installed(kube, "fraudops-operator", OPERATOR_NAMESPACE):
        helm(
            kube,
            "install",
            "fraudops-operator",
            "charts/fraudops-operator",
            "-n",
            OPERATOR_NAMESPACE,
            "--create-namespace",
            "--set",
            "image.pullPolicy=Never",
            "--wait",
            "--timeout",
            "5m",
        )
    if not installed(kube, "fraudops", NAMESPACE):
        helm(
            kube,
            "install",
            "fraudops",
            "charts/fraudops",
            "-n",
            NAMESPACE,
            "-f",
            "tests/e2e/values/fraudops.yaml",
            "--timeout",
            "15m",
        )
    # The migrations and topics Jobs are helm hooks (deleted once they succeed): helm install waited for them.
    kube.wait_for(
        "the seed Job to train the first model",
        lambda: bool(kube.get("-n", NAMESPACE, "job", "fraudops-seed")["status"].get("succeeded")),
        timeout_s=900,
    )
    for statefulset in ("fraudops-kafka", "fraudops-postgresql"):
        kube.kubectl(
            "-n",
            NAMESPACE,
            "rollout",
            "status",
            f"statefulset/{statefulset}",
            "--timeout=600s",
            timeout_s=630,
        )
    yield kube


def pods(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kube.get("-n", namespace, "pods")["items"]
    return items


def test_every_platform_pod_runs_restricted_without_restarts(platform: Kube) -> None:
    for namespace in (NAMESPACE, OPERATOR_NAMESPACE):
        for pod in pods(platform, namespace):
            name = pod["metadata"]["name"]
            restarts = sum(c.get("restartCount", 0) for c in pod["status"].get("containerStatuses", []))
            assert restarts == 0, f"{namespace}/{name} restarted {restarts} times"
            assert pod["status"]["phase"] in ("Running", "Succeeded"), f"{namespace}/{name}: {pod['status']}"


def psql(kube: Kube, query: str) -> str:
    script = 'PGPASSWORD="$POSTGRES_PASSWORD" psql -h /tmp -U "$POSTGRES_USER" -d "$POSTGRES_DB" -tAc "$0"'
    return kube.kubectl(
        "-n", NAMESPACE, "exec", "fraudops-postgresql-0", "--", "sh", "-c", script, query
    ).stdout.strip()


def fraud_model() -> dict[str, Any]:
    return {
        "apiVersion": "fraudops.io/v1alpha1",
        "kind": "FraudModel",
        "metadata": {"name": "card-fraud", "namespace": NAMESPACE},
        "spec": {
            "stable": {
                "version": "2026-11-01",
                "modelUri": "pvc://fraudops-models/models/card-fraud/2026-11-01",
            },
            "stream": {
                "topic": "transactions",
                "partitions": 6,
                "kafkaCluster": "fraudops",
                "consumerGroup": "fraud-scorer",
                "minReplicas": 1,
                "maxReplicas": 3,
                "lagThreshold": 1000,
                "databaseSecret": {"name": "fraudops-db", "key": "url"},
            },
        },
    }


def test_a_fraud_model_scores_a_simulated_stream_into_postgresql(platform: Kube) -> None:
    kube = platform
    kube.apply(fraud_model())
    kube.wait_for(
        "the stable InferenceService to be Ready",
        lambda: any(
            c["type"] == "Ready" and c["status"] == "True"
            for isvc in kube.get("-n", NAMESPACE, "isvc")["items"]
            for c in isvc.get("status", {}).get("conditions", [])
        ),
        timeout_s=600,
    )
    kube.kubectl(
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        "deployment/card-fraud-consumer",
        "--timeout=600s",
        timeout_s=630,
    )
    stored_before = int(psql(kube, "select count(*) from decisions"))

    producer = kube.get("-n", NAMESPACE, "job", "fraudops-seed")["spec"]["template"]["spec"]
    container = {
        **producer["containers"][0],
        "name": "produce",
        "command": ["fraudops", "simulate", "--kafka", "--transactions", str(RECORDS), "--seed", "7"],
        "args": [],
    }
    container["env"] = [e for e in container.get("env", []) if e["name"] != "FRAUDOPS_SEED"] + [
        {"name": "KAFKA_BOOTSTRAP_SERVERS", "value": "fraudops-kafka-bootstrap:9092"}
    ]
    container.pop("volumeMounts", None)
    kube.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "produce"},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "securityContext": producer.get("securityContext", {}),
                        "containers": [container],
                        "volumes": [v for v in producer.get("volumes", []) if v["name"] == "tmp"],
                    }
                },
            },
        },
        namespace=NAMESPACE,
    )
    kube.wait_for(
        "the producer Job to finish",
        lambda: bool(kube.get("-n", NAMESPACE, "job", "produce")["status"].get("succeeded")),
        timeout_s=300,
    )

    kube.wait_for(
        f"{RECORDS} new decisions in PostgreSQL",
        lambda: int(psql(kube, "select count(*) from decisions")) - stored_before >= RECORDS,
        timeout_s=600,
    )
    distinct = int(psql(kube, "select count(distinct transaction_id) from decisions"))
    total = int(psql(kube, "select count(*) from decisions"))
    assert distinct == total, "a transaction was stored twice"
    assert total - stored_before == RECORDS
