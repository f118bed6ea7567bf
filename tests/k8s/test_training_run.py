"""A TrainingRun's Job on the real API server. No kubelet runs it: the test plays the Job controller and the
kubelet by setting the Job's status and its pod's termination message, exactly as they would."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.k8s.cluster import Cluster, condition
from tests.k8s.conftest import OperatorRunner
from tests.k8s.objects import fraud_model, training_run, volume_claim

pytestmark = pytest.mark.k8s

RUN, JOB = "cf-2026-11-28", "cf-2026-11-28-train"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def start_training(cluster: Cluster, namespace: str, **run_spec: Any) -> dict[str, Any]:
    for claim in ("datasets", "models"):
        cluster.apply(volume_claim(namespace, claim))
    cluster.apply(fraud_model(namespace))
    run = training_run(namespace, RUN)
    run["spec"].update(run_spec)
    cluster.apply(run)
    return cluster.wait_for(lambda: cluster.get("Job", namespace, JOB), "the training Job")


def finish_job(cluster: Cluster, namespace: str, succeeded: bool = True) -> None:
    """What the Job controller writes once its pod succeeded, or failed (backoffLimit 0)."""
    if succeeded:
        outcome: dict[str, Any] = {
            "completionTime": now(),
            "succeeded": 1,
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now()},
                {"type": "Complete", "status": "True", "lastTransitionTime": now()},
            ],
        }
    else:
        failed = {"status": "True", "reason": "BackoffLimitExceeded", "lastTransitionTime": now()}
        outcome = {
            "failed": 1,
            "conditions": [{"type": "FailureTarget", **failed}, {"type": "Failed", **failed}],
        }
    cluster.patch("Job", namespace, JOB, {"status": {"startTime": now(), **outcome}}, status=True)


def finish_pod(cluster: Cluster, namespace: str, exit_code: int, result: dict[str, Any]) -> None:
    """What the kubelet leaves behind: a terminated container whose message is the JSON result."""
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{JOB}-x7k2p",
                "namespace": namespace,
                "labels": {"batch.kubernetes.io/job-name": JOB, "job-name": JOB},
            },
            "spec": {"restartPolicy": "Never", "containers": [{"name": "train", "image": "fraudops:test"}]},
        }
    )
    cluster.patch(
        "Pod",
        namespace,
        f"{JOB}-x7k2p",
        {
            "status": {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                "containerStatuses": [
                    {
                        "name": "train",
                        "image": "fraudops:test",
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {
                            "terminated": {
                                "exitCode": exit_code,
                                "reason": "Completed" if exit_code == 0 else "Error",
                                "message": json.dumps(result),
                                "startedAt": now(),
                                "finishedAt": now(),
                            }
                        },
                    }
                ],
            }
        },
        status=True,
    )


def test_a_successful_training_run_makes_its_artifact_the_fraud_models_candidate(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    job = start_training(cluster, namespace)
    [container] = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert container["command"] == ["fraudops", "train"]
    assert (env["FRAUDOPS_TRAIN_VERSION"], env["FRAUDOPS_TRAIN_TRIALS"], env["FRAUDOPS_TRAIN_TIMEOUT"]) == (
        RUN,
        "5",
        "120",
    )
    assert job["metadata"]["ownerReferences"][0]["kind"] == "TrainingRun"

    finish_pod(
        cluster,
        namespace,
        0,
        {
            "status": "Succeeded",
            "version": RUN,
            "artifactUri": f"/mnt/output/artifacts/card-fraud/{RUN}",
            "metrics": {"pr_auc": 0.83, "recall_at_k": 0.61},
        },
    )
    finish_job(cluster, namespace)

    run = cluster.wait_for_phase("TrainingRun", namespace, RUN, "Succeeded")
    assert run["status"]["metrics"] == {"pr_auc": 0.83, "recall_at_k": 0.61}
    assert run["status"]["artifactUri"] == f"pvc://models/artifacts/card-fraud/{RUN}"
    fm = cluster.wait_for(
        lambda: (
            (f := cluster.get("FraudModel", namespace, "card-fraud")) and f["spec"].get("candidate") and f
        ),
        "the FraudModel's candidate",
    )
    assert fm["spec"]["candidate"] == {
        "version": RUN,
        "modelUri": f"pvc://models/artifacts/card-fraud/{RUN}",
        "features": {
            "forVersion": RUN,
            "entityFeatures": False,
            "labelDelayDays": 7,
            "entityEpochSeconds": 60,
            "entityLagEpochs": 1,  # what `fraudops train` records now
        },
    }
    cluster.wait_for(
        lambda: (
            condition(cluster.get("TrainingRun", namespace, RUN), "FraudModelUpdated").get("status") == "True"
        ),
        "the hand-over to be recorded",
    )
    cluster.wait_for(
        lambda: (
            (cluster.get("FraudModel", namespace, "card-fraud") or {})
            .get("status", {})
            .get("candidateVersion")
            == RUN
        ),
        "the rollout of the new candidate to start",
    )
    assert "CandidateFromTraining" in [e["reason"] for e in cluster.events(namespace, "card-fraud")]


def test_an_entity_feature_run_hands_over_a_version_that_brings_the_entity_state_component(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    # The stable was trained with the default label delay (7 days): so is the candidate, or it could not
    # roll out against it.
    job = start_training(cluster, namespace, entityFeatures=True)
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FRAUDOPS_TRAIN_ENTITY_FEATURES"] == "true"

    finish_pod(cluster, namespace, 0, {"status": "Succeeded", "version": RUN, "metrics": {}})
    finish_job(cluster, namespace)

    fm = cluster.wait_for(
        lambda: (
            (f := cluster.get("FraudModel", namespace, "card-fraud")) and f["spec"].get("candidate") and f
        ),
        "the FraudModel's candidate",
    )
    assert fm["spec"]["candidate"]["features"]["entityFeatures"] is True
    assert fm["spec"]["candidate"]["features"]["entityLagEpochs"] == 1
    component = cluster.wait_for(
        lambda: cluster.get("Deployment", namespace, "card-fraud-entity-state"),
        "the entity-state component for the candidate's rollout",
    )
    command = component["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--label-delay-days") + 1] == "7"


def test_the_training_job_is_told_the_extra_columns_of_the_spec(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    job = start_training(
        cluster,
        namespace,
        extraColumns={"numeric": ["customer_age"], "categorical": ["mcc", "pos_entry_mode"]},
    )
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FRAUDOPS_TRAIN_EXTRA_NUMERIC"] == "customer_age"
    assert env["FRAUDOPS_TRAIN_EXTRA_CATEGORICAL"] == "mcc,pos_entry_mode"


def test_a_version_the_fraud_model_refuses_is_reported_on_the_training_run(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    start_training(cluster, namespace, data={"uri": "pvc://datasets/x.parquet", "labelDelay": "5d"})
    finish_pod(cluster, namespace, 0, {"status": "Succeeded", "version": RUN, "metrics": {}})
    finish_job(cluster, namespace)

    run = cluster.wait_for_reason("TrainingRun", namespace, RUN, "FraudModelUpdated", "HandOverRejected")

    message = condition(run, "FraudModelUpdated")["message"]
    assert message.startswith(f"FraudModel card-fraud refused {RUN}: ")
    assert "must have the stable's labelDelayDays and entityEpochSeconds" in message
    assert "candidate" not in cluster.must_get("FraudModel", namespace, "card-fraud")["spec"]
    cluster.wait_for(
        lambda: any(
            e["reason"] == "HandOverRejected" and e["type"] == "Warning"
            for e in cluster.events(namespace, RUN)
        ),
        "a Warning Event on the TrainingRun",
    )


def test_a_failed_training_run_reports_why_and_leaves_the_fraud_model_alone(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    start_training(cluster, namespace)
    finish_pod(
        cluster, namespace, 1, {"status": "Failed", "message": "no fraud labels in the training window"}
    )
    finish_job(cluster, namespace, succeeded=False)

    run = cluster.wait_for_phase("TrainingRun", namespace, RUN, "Failed")
    assert run["status"]["message"] == "training failed: no fraud labels in the training window"
    assert condition(run, "Succeeded")["status"] == "False"
    assert "candidate" not in cluster.must_get("FraudModel", namespace, "card-fraud")["spec"]
    assert any(
        e["reason"] == "TrainingFailed" and e["type"] == "Warning" for e in cluster.events(namespace, RUN)
    )
