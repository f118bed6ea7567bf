"""The operator's trust boundary on the real API server: a FraudModel or TrainingRun naming an image outside
the operator's allow-list (default `ghcr.io/fraudops/`) gets no children, a condition and a Warning Event."""

from __future__ import annotations

import pytest

from tests.k8s.cluster import Cluster, condition
from tests.k8s.conftest import OperatorRunner
from tests.k8s.objects import fraud_model, training_run, volume_claim

pytestmark = pytest.mark.k8s

UNTRUSTED = "docker.io/someone/predictor:latest"


def test_a_fraud_model_with_an_image_outside_the_allow_list_is_refused_with_a_condition_and_an_event(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    cluster.apply(fraud_model(namespace, predictor={"image": UNTRUSTED}))

    fm = cluster.wait_for_reason("FraudModel", namespace, "card-fraud", "Ready", "ImageNotAllowed")
    ready = condition(fm, "Ready")
    assert ready["status"] == "False"
    assert ready["message"] == (
        f"predictor image {UNTRUSTED!r} not allowed by the operator's image allow-list (ghcr.io/fraudops/)"
    )
    event = cluster.wait_for(
        lambda: [e for e in cluster.events(namespace, "card-fraud") if e["reason"] == "ImageNotAllowed"],
        "a Warning Event",
    )[0]
    assert event["type"] == "Warning" and UNTRUSTED in event["message"]
    children = [
        ("InferenceService", "card-fraud-2026-11-01"),
        ("KafkaTopic", "card-fraud-transactions"),
        ("ConfigMap", "card-fraud-routing"),
        ("Deployment", "card-fraud-consumer"),
        ("ScaledObject", "card-fraud-consumer"),
    ]
    assert [child for child in children if cluster.get(child[0], namespace, child[1])] == []

    # Back inside the allow-list: the same object is reconciled normally.
    cluster.patch(
        "FraudModel",
        namespace,
        "card-fraud",
        {"spec": {"predictor": {"image": "ghcr.io/fraudops/predictor:0.1.0"}}},
    )
    cluster.wait_for(
        lambda: (
            condition(cluster.get("FraudModel", namespace, "card-fraud"), "Ready").get("status") == "True"
        ),
        "Ready=True once the image is allowed",
    )
    assert [child for child in children if cluster.get(child[0], namespace, child[1]) is None] == []


def test_a_training_run_with_an_image_outside_the_allow_list_gets_no_job(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    for claim in ("datasets", "models"):
        cluster.apply(volume_claim(namespace, claim))
    run = training_run(namespace, "untrusted-run", fraud_model_name=None)
    run["spec"]["image"] = "ghcr.io/fraudops-mirror/fraudops:0.1.0"  # a lookalike of the allowed prefix
    cluster.apply(run)

    tr = cluster.wait_for_reason("TrainingRun", namespace, "untrusted-run", "Succeeded", "ImageNotAllowed")
    assert tr["status"]["phase"] == "Pending"
    assert (
        "training image 'ghcr.io/fraudops-mirror/fraudops:0.1.0' not allowed"
        in condition(tr, "Succeeded")["message"]
    )
    cluster.wait_for(
        lambda: any(
            e["reason"] == "ImageNotAllowed" and e["type"] == "Warning"
            for e in cluster.events(namespace, "untrusted-run")
        ),
        "a Warning Event",
    )
    assert cluster.get("Job", namespace, "untrusted-run-train") is None
