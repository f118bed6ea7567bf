"""A TrainingRun's Job, the outcome read back from it, and the FraudModel change it makes (pure)."""

from __future__ import annotations

import json
from typing import Any

from fraudops.features.spec import DAY, FeatureConfig
from fraudops.routing import TrainedFeatures
from fraudops_operator import crd
from fraudops_operator.desired import desired_children
from fraudops_operator.resources import ModelVersion, TrainingRun
from fraudops_operator.rollout import Phase, RolloutState
from fraudops_operator.training import desired_training_job, fraud_model_change, training_outcome
from tests.unit.fraud_models import stored_fraud_model

SPEC = {
    "data": {"uri": "pvc://datasets/transactions/2026-11.parquet"},
    "output": {"uri": "pvc://models/artifacts"},
    "optuna": {"trials": 50, "timeout": "12m"},
    "fraudModelRef": {"name": "card-fraud"},
}


def training_run(**spec: Any) -> TrainingRun:
    body = {
        "apiVersion": crd.API_VERSION,
        "kind": "TrainingRun",
        "metadata": {"name": "cf-2026-11-28", "namespace": "fraud", "uid": "t1", "generation": 1},
        "spec": crd.apply_defaults(crd.TRAINING_RUN_SPEC, {**SPEC, **spec}),
    }
    return TrainingRun.from_body(body)


def test_the_job_runs_fraudops_train_configured_by_environment() -> None:
    job = desired_training_job(training_run())
    [container] = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert container["command"] == ["fraudops", "train"]
    assert env["FRAUDOPS_TRAIN_DATA"] == "/mnt/data/transactions/2026-11.parquet"
    assert env["FRAUDOPS_TRAIN_OUTPUT"] == "/mnt/output/artifacts"
    assert (env["FRAUDOPS_TRAIN_NAME"], env["FRAUDOPS_TRAIN_VERSION"]) == ("card-fraud", "cf-2026-11-28")
    assert (env["FRAUDOPS_TRAIN_TRIALS"], env["FRAUDOPS_TRAIN_TIMEOUT"]) == ("50", "720")
    assert env["FRAUDOPS_TRAIN_LABEL_DELAY_DAYS"] == "7"
    assert env["FRAUDOPS_TRAIN_ENTITY_FEATURES"] == "false"
    assert "FRAUDOPS_TRAIN_EXTRA_NUMERIC" not in env and "FRAUDOPS_TRAIN_EXTRA_CATEGORICAL" not in env
    assert job["spec"]["backoffLimit"] == 0
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in job["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {"data": "datasets", "output": "models"}


def test_the_job_trains_on_the_extra_columns_of_the_spec() -> None:
    run = training_run(extraColumns={"numeric": ["customer_age"], "categorical": ["mcc", "pos_entry_mode"]})
    env = {
        e["name"]: e["value"]
        for e in desired_training_job(run)["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["FRAUDOPS_TRAIN_EXTRA_NUMERIC"] == "customer_age"
    assert env["FRAUDOPS_TRAIN_EXTRA_CATEGORICAL"] == "mcc,pos_entry_mode"


def complete_job() -> dict:
    return {
        "status": {
            "succeeded": 1,
            "completionTime": "2026-11-28T13:00:00Z",
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True"},
                {"type": "Complete", "status": "True"},
            ],
        }
    }


def pod(message: str) -> dict:
    return {
        "metadata": {"name": "p", "creationTimestamp": "2026-11-28T12:00:00Z"},
        "status": {
            "containerStatuses": [
                {"name": "train", "state": {"terminated": {"exitCode": 0, "message": message}}}
            ]
        },
    }


def test_a_complete_job_succeeds_with_the_metrics_of_its_termination_message() -> None:
    result = {
        "status": "Succeeded",
        "artifactUri": "/mnt/output/artifacts/card-fraud/cf-2026-11-28",
        "version": "cf-2026-11-28",
        "metrics": {"pr_auc": 0.81},
    }
    outcome = training_outcome(complete_job(), [pod(json.dumps(result))])
    assert (outcome.phase, dict(outcome.metrics)) == ("Succeeded", {"pr_auc": 0.81})
    assert outcome.completion_time == "2026-11-28T13:00:00Z"


def test_a_failed_job_says_why() -> None:
    job = {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}
    outcome = training_outcome(
        job, [pod(json.dumps({"status": "Failed", "message": "no fraud labels in data"}))]
    )
    assert (outcome.phase, outcome.message) == ("Failed", "training failed: no fraud labels in data")


def test_a_job_without_conditions_is_pending_or_running() -> None:
    assert training_outcome(None, []).phase == "Pending"
    assert (
        training_outcome({"status": {"active": 1, "startTime": "2026-11-28T12:00:00Z"}}, []).phase
        == "Running"
    )


def test_success_makes_the_artifact_the_fraud_models_candidate() -> None:
    patch = fraud_model_change(
        training_run(), {"spec": {"stable": {"version": "2026-11-01", "modelUri": "s3://a"}}}
    )
    assert patch == {
        "spec": {
            "candidate": {
                "version": "cf-2026-11-28",
                "modelUri": "pvc://models/artifacts/card-fraud/cf-2026-11-28",
                "features": {
                    "forVersion": "cf-2026-11-28",
                    "entityFeatures": False,
                    "labelDelayDays": 7,
                    "entityEpochSeconds": 60,
                    "entityLagEpochs": 1,
                },
            },
            "rollout": {"promote": False, "abort": False},
        }
    }


def test_an_entity_feature_run_trains_with_them_and_hands_over_what_it_trained_with() -> None:
    run = training_run(entityFeatures=True, data={**SPEC["data"], "labelDelay": "5d"})
    [container] = desired_training_job(run)["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (env["FRAUDOPS_TRAIN_ENTITY_FEATURES"], env["FRAUDOPS_TRAIN_LABEL_DELAY_DAYS"]) == ("true", "5")

    patch = fraud_model_change(run, {"spec": {"stable": {"version": "2026-11-01", "modelUri": "s3://a"}}})

    assert patch is not None
    assert patch["spec"]["candidate"]["features"] == {
        "forVersion": "cf-2026-11-28",
        "entityFeatures": True,
        "labelDelayDays": 5,
        "entityEpochSeconds": 60,
        "entityLagEpochs": 1,
    }


def test_the_hand_over_declares_what_the_runs_artifact_records_entity_lag_included() -> None:
    """The operator reads no artifact: it declares what `fraudops train` records when told what the Job is
    told (its feature_config with training's defaults for the epoch and the lag), which the predictor checks."""
    run = training_run(entityFeatures=True, data={**SPEC["data"], "labelDelay": "5d"})
    [container] = desired_training_job(run)["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    # as fraudops_training.pipeline.run_training builds it and writes it to metadata.yaml
    recorded = TrainedFeatures.recorded(
        FeatureConfig(label_delay_s=float(env["FRAUDOPS_TRAIN_LABEL_DELAY_DAYS"]) * DAY).as_dict(),
        {"entity_features": env["FRAUDOPS_TRAIN_ENTITY_FEATURES"] == "true"},
    )

    patch = fraud_model_change(run, {"spec": {}})

    assert patch is not None
    declared = ModelVersion.from_spec(patch["spec"]["stable"])
    assert declared is not None and declared.features == recorded
    assert patch["spec"]["stable"]["features"]["entityLagEpochs"] == recorded.entity_lag_epochs == 1
    assert declared.features.mismatch(recorded, "card-fraud:cf-2026-11-28") is None


def test_a_fraud_model_without_versions_gets_the_artifact_as_stable() -> None:
    patch = fraud_model_change(training_run(), {"spec": {}})
    assert patch is not None and set(patch["spec"]) == {"stable"}


def test_a_promoted_candidate_becomes_stable_before_the_next_one() -> None:
    promoted = {"version": "2026-11-20", "modelUri": "s3://b"}
    fraud_model = {
        "spec": {"stable": {"version": "2026-11-01", "modelUri": "s3://a"}, "candidate": promoted},
        "status": {"rollout": {"phase": "Promoted", "candidateVersion": "2026-11-20"}},
    }
    patch = fraud_model_change(training_run(), fraud_model)
    assert patch is not None and patch["spec"]["stable"] == {
        **promoted,
        "features": {
            "forVersion": "2026-11-20",
            "entityFeatures": False,
            "labelDelayDays": 7,
            "entityEpochSeconds": 60,
            "entityLagEpochs": 1,
        },
    }


def test_handing_over_twice_changes_nothing() -> None:
    run = training_run()
    fraud_model = {
        "spec": {
            "stable": {"version": "2026-11-01", "modelUri": "s3://a"},
            "candidate": {"version": run.version, "modelUri": "pvc://models/x"},
        }
    }
    assert fraud_model_change(run, fraud_model) is None


def test_a_label_delay_in_hours_is_the_same_number_in_training_the_fraud_model_and_the_component() -> None:
    """The artifact records what training read, the component what it was started with, and the scorers use
    what the FraudModel declares: all three must be the same float, or the consumer refuses the table."""
    run = training_run(entityFeatures=True, data={**SPEC["data"], "labelDelay": "10h"})
    [container] = desired_training_job(run)["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    recorded_s = float(env["FRAUDOPS_TRAIN_LABEL_DELAY_DAYS"]) * DAY  # `fraudops train --label-delay-days`

    patch = fraud_model_change(run, {"spec": {}})
    assert patch is not None
    model = stored_fraud_model(json.loads(json.dumps(patch["spec"])))  # as the API server stores it
    [component] = [
        c
        for c in desired_children(model, RolloutState(Phase.STABLE))
        if c["metadata"]["name"].endswith("-entity-state")
    ]
    command = component["spec"]["template"]["spec"]["containers"][0]["command"]
    started_s = float(command[command.index("--label-delay-days") + 1]) * DAY  # `fraudops stream entities`

    assert model.stable is not None
    assert model.stable.features.label_delay_s == recorded_s == started_s == 10 * 3600
