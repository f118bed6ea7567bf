"""A FraudModel's children, against the real API server and the upstream CRD schemas: created, owned,
left alone when nothing changed, deleted with their owner, and clear conditions when they cannot be."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from fraudops.routing import RoutingTable, load_routing_table
from tests.k8s.cluster import Cluster, condition
from tests.k8s.conftest import OperatorRunner
from tests.k8s.objects import CANDIDATE, fraud_model, volume_claim

pytestmark = pytest.mark.k8s

CHILDREN = [
    ("KafkaTopic", "card-fraud-transactions"),
    ("InferenceService", "card-fraud-2026-11-01"),
    ("ConfigMap", "card-fraud-routing"),
    ("Deployment", "card-fraud-consumer"),
    ("ScaledObject", "card-fraud-consumer"),
]


def wait_ready(cluster: Cluster, namespace: str, name: str = "card-fraud") -> dict[str, Any]:
    return cluster.wait_for(
        lambda: (
            (fm := cluster.get("FraudModel", namespace, name))
            and condition(fm, "Ready").get("status") == "True"
            and fm
        ),
        f"FraudModel {name} to be Ready",
    )


def test_a_fraud_model_gets_children_that_the_upstream_schemas_accept(
    cluster: Cluster, operator: OperatorRunner, namespace: str, tmp_path: Path
) -> None:
    cluster.apply(fraud_model(namespace, threshold=0.25, stream={"partitions": 12, "maxReplicas": 8}))
    fm = wait_ready(cluster, namespace)

    for kind, name in CHILDREN:  # each was created by server-side apply, so the API server validated it
        child = cluster.must_get(kind, namespace, name)
        [owner] = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "FraudModel",
            fm["metadata"]["uid"],
            True,
        )
        assert any(
            m["manager"] == "fraudops-operator" and m["operation"] == "Apply"
            for m in child["metadata"]["managedFields"]
        )
    isvc = cluster.must_get("InferenceService", namespace, "card-fraud-2026-11-01")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert isvc["spec"]["predictor"]["containers"][0]["env"][0] == {
        "name": "STORAGE_URI",
        "value": "s3://models/card-fraud/2026-11-01",
    }
    scaled = cluster.must_get("ScaledObject", namespace, "card-fraud-consumer")
    assert (scaled["spec"]["maxReplicaCount"], scaled["spec"]["triggers"][0]["metadata"]["topic"]) == (
        8,
        "transactions",
    )
    topic = cluster.must_get("KafkaTopic", namespace, "card-fraud-transactions")
    assert (topic["spec"]["partitions"], topic["metadata"]["labels"]["strimzi.io/cluster"]) == (
        12,
        "fraudops",
    )

    routing_file = tmp_path / "routing.yaml"
    routing_file.write_text(
        cluster.must_get("ConfigMap", namespace, "card-fraud-routing")["data"]["routing.yaml"]
    )
    table = load_routing_table(routing_file)  # exactly what the gateway and the consumer will read
    assert table == RoutingTable.model_validate(fm["status"]["routing"])
    [stable] = table.variants
    assert stable.endpoint == f"http://card-fraud-2026-11-01-predictor.{namespace}.svc.cluster.local"
    assert (fm["status"]["phase"], fm["status"]["stableVersion"]) == ("Stable", "2026-11-01")


def test_kubectl_get_shows_phase_versions_and_weight(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    cluster.apply(
        fraud_model(namespace, candidate=CANDIDATE, rollout={"steps": [{"weight": 20, "pause": "1h"}]})
    )
    cluster.wait_for(
        lambda: (
            (cluster.get("FraudModel", namespace, "card-fraud") or {})
            .get("status", {})
            .get("candidateWeight")
            == 20
        ),
        "the canary at 20%",
    )
    output = cluster.server.kubectl("get", "fm", "-n", namespace).stdout.split("\n")
    assert output[0].split() == ["NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "AGE"]
    assert output[1].split()[:5] == ["card-fraud", "Paused", "2026-11-01", "2026-11-28", "20"]


def test_applying_the_same_spec_twice_makes_no_write(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    manifest = fraud_model(namespace)
    cluster.apply(manifest)
    wait_ready(cluster, namespace)
    operator.wait_for_reconciles(
        namespace, 2
    )  # the tick that wrote Ready has ended; one more found nothing to do

    def versions() -> dict[str, str]:
        objects = [("FraudModel", "card-fraud"), *CHILDREN]
        return {
            f"{k}/{n}": cluster.must_get(k, namespace, n)["metadata"]["resourceVersion"] for k, n in objects
        }

    before, writes_before = versions(), cluster.operator_writes(namespace)
    assert (
        "patch configmaps/card-fraud-routing" in writes_before
    )  # the audit log does see the operator's writes
    cluster.apply(manifest)
    operator.wait_for_reconciles(namespace, 3)
    assert versions() == before
    assert cluster.operator_writes(namespace) == writes_before, "the operator wrote although nothing changed"


def test_deleting_a_fraud_model_deletes_its_children(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    cluster.apply(fraud_model(namespace))
    wait_ready(cluster, namespace)
    cluster.delete("FraudModel", namespace, "card-fraud")
    cluster.wait_for(
        lambda: all(cluster.get(k, namespace, n) is None for k, n in CHILDREN),
        "the garbage collector to delete every child",
        timeout_s=60,
    )


def test_a_deleted_fraud_model_leaves_no_rollout_gauges_behind(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    def rollout_gauges() -> set[str]:
        """The operator's per-FraudModel gauges that have a series for this namespace (in-process registry)."""
        return {
            family.name
            for family in REGISTRY.collect()
            if family.name.startswith("fraudops_rollout_") and family.type == "gauge"
            for sample in family.samples
            if sample.labels.get("namespace") == namespace
        }

    cluster.apply(fraud_model(namespace))
    wait_ready(cluster, namespace)
    cluster.wait_for(rollout_gauges, "the rollout gauges of the FraudModel")

    cluster.delete("FraudModel", namespace, "card-fraud")

    cluster.wait_for(
        lambda: not rollout_gauges(), "the deleted FraudModel's rollout gauges to go", timeout_s=30
    )


@pytest.mark.parametrize(
    ("model_uri", "reason_text"),
    [
        ("ftp://models/card-fraud/v2", "scheme ftp:// is not one KServe's storage initializer reads"),
        ("pvc://missing-claim/card-fraud/v2", "PersistentVolumeClaim missing-claim not found"),
    ],
)
def test_an_unreadable_artifact_is_a_condition_and_the_stable_keeps_serving(
    cluster: Cluster, operator: OperatorRunner, namespace: str, model_uri: str, reason_text: str
) -> None:
    cluster.apply(fraud_model(namespace))
    wait_ready(cluster, namespace)
    cluster.patch(
        "FraudModel",
        namespace,
        "card-fraud",
        {"spec": {"candidate": {"version": "v2", "modelUri": model_uri}}},
    )

    fm = cluster.wait_for_reason("FraudModel", namespace, "card-fraud", "Ready", "ArtifactUnreadable")
    ready = condition(fm, "Ready")
    assert ready["status"] == "False" and reason_text in ready["message"]
    assert ready["message"].startswith("candidate v2: ")
    assert fm["status"]["phase"] == "Stable"
    assert cluster.get("InferenceService", namespace, "card-fraud-v2") is None
    cluster.wait_for(
        lambda: any(
            e["reason"] == "ArtifactUnreadable" and e["type"] == "Warning"
            for e in cluster.events(namespace, "card-fraud")
        ),
        "a Warning Event",
    )

    if model_uri.startswith("pvc://"):  # the claim appears: the rollout starts by itself
        cluster.apply(volume_claim(namespace, "missing-claim"))
        cluster.wait_for(
            lambda: cluster.get("InferenceService", namespace, "card-fraud-v2"),
            "the candidate's InferenceService once its claim exists",
        )
