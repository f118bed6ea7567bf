"""The platform on the e2e node, in the reduced form that fits CI: both charts installed with helm, every
pod Ready under the restricted Pod Security Standard with no restart, and one FraudModel whose KServe
predictor and KEDA-scaled consumer score a simulated stream from the in-cluster Kafka into the
in-cluster PostgreSQL, every record stored once.

The chart's seed Job trains the first model into the models volume (the FraudModel's stable version);
the install itself is the session fixture `platform` (tests/e2e/platform.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.kube import Kube
from tests.e2e.platform import (
    MODEL,
    NAMESPACE,
    OPERATOR_NAMESPACE,
    STABLE_VERSION,
    pods,
    produce,
    psql,
    restarts,
    stored_decisions,
)
from tests.e2e.report import REPORT

pytestmark = pytest.mark.e2e

RECORDS = 2000


def fraud_model() -> dict[str, Any]:
    return {
        "apiVersion": "fraudops.io/v1alpha1",
        "kind": "FraudModel",
        "metadata": {"name": MODEL, "namespace": NAMESPACE},
        "spec": {
            "stable": {
                "version": STABLE_VERSION,
                "modelUri": f"pvc://fraudops-models/models/{MODEL}/{STABLE_VERSION}",
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
                # three consumers and two predictors (a canary) fit the node's two cores
                "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
            },
            "predictor": {
                "minReplicas": 1,
                "maxReplicas": 1,
                "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
            },
        },
    }


def test_a_fraud_model_scores_a_simulated_stream_into_postgresql(platform: Kube) -> None:
    kube = platform
    with REPORT.step("FraudModel applied: stable InferenceService Ready, consumer rolled out") as numbers:
        kube.apply(fraud_model())
        numbers["isvc_ready_s"] = round(
            kube.wait_for(
                "the stable InferenceService to be Ready",
                lambda: any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for isvc in kube.get("-n", NAMESPACE, "isvc")["items"]
                    for c in isvc.get("status", {}).get("conditions", [])
                ),
                timeout_s=600,
            ),
            1,
        )
        kube.kubectl(
            "-n",
            NAMESPACE,
            "rollout",
            "status",
            f"deployment/{MODEL}-consumer",
            "--timeout=600s",
            timeout_s=630,
        )
    with REPORT.step(f"{RECORDS} simulated records produced, scored and stored once") as numbers:
        stored_before, _ = stored_decisions(kube)
        produce(kube, "produce", "--transactions", str(RECORDS), "--seed", "7", timeout_s=300)
        kube.wait_for(
            f"{RECORDS} new decisions in PostgreSQL",
            lambda: stored_decisions(kube)[0] - stored_before >= RECORDS,
            timeout_s=600,
        )
        total, distinct = stored_decisions(kube)
        fraud, unalerted = psql(
            kube,
            "select count(*), count(*) filter (where a.transaction_id is null) from decisions d "
            "left join alerts a using (transaction_id) where d.is_fraud and not d.shadow",
        ).split("|")
        numbers.update(produced=RECORDS, stored=total - stored_before, fraud_decisions=int(fraud))
        assert distinct == total, "a transaction was stored twice"
        assert total - stored_before == RECORDS
        assert int(unalerted) == 0, f"{unalerted} of {fraud} fraud decisions have no stored alert"


def test_every_platform_pod_runs_restricted_without_restarts(platform: Kube) -> None:
    """After the FraudModel exists: the gateway's pods wait for its routing ConfigMap until then."""
    platform.kubectl(
        "-n", NAMESPACE, "rollout", "status", "deployment/fraudops-gateway", "--timeout=300s", timeout_s=330
    )
    for namespace in (NAMESPACE, OPERATOR_NAMESPACE):
        for pod in pods(platform, namespace):
            name = pod["metadata"]["name"]
            assert restarts(pod) == 0, f"{namespace}/{name} restarted {restarts(pod)} times"
            assert pod["status"]["phase"] in ("Running", "Succeeded"), f"{namespace}/{name}: {pod['status']}"
