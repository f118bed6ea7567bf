"""Invalid FraudModels and TrainingRuns are refused by the API server itself (OpenAPI + CEL), with the
schema's message, so the operator never sees them; valid ones get every default from the schema."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fraudops.features.spec import MAX_ENTITY_LAG_EPOCHS
from fraudops_operator import crd
from tests.conftest import REPO_ROOT
from tests.k8s.cluster import Cluster
from tests.k8s.objects import CANDIDATE, STABLE, declared, fraud_model, training_run

pytestmark = pytest.mark.k8s


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"rollout": {"steps": [{"weight": 150}]}},
            "spec.rollout.steps[0].weight: Invalid value: 150: spec.rollout.steps[0].weight in body should be less than "
            "or equal to 100",
        ),
        (
            {"stable": None, "candidate": CANDIDATE},
            "spec.candidate: Invalid value: a candidate needs a stable version to roll out against: set spec.stable",
        ),
        (
            {"rollout": {"strategy": "blueGreen"}},
            'spec.rollout.strategy: Unsupported value: "blueGreen": supported values: "canary", "abTest", "shadow"',
        ),
        (
            {"rollout": {"strategy": "abTest", "abTest": {"candidateWeight": 20}}},
            "abTest weights must sum to 100: stableWeight + candidateWeight",
        ),
        ({"rollout": {"steps": [{"weight": 50}, {"weight": 10}]}}, "canary step weights must not decrease"),
        ({"rollout": {"strategy": "canary", "steps": []}}, "a canary rollout needs at least one step"),
        (
            {"stream": {"partitions": 3, "maxReplicas": 6}},
            "spec.stream.maxReplicas: Invalid value: stream.maxReplicas must not exceed stream.partitions",
        ),
        ({"candidate": STABLE}, "spec.candidate.version must differ from spec.stable.version"),
        (
            {"rollout": {"promote": True, "abort": True}},
            "rollout.promote and rollout.abort cannot both be true",
        ),
        ({"stable": {"version": "V1", "modelUri": "s3://m/v1"}}, "spec.stable.version in body should match"),
        (
            {"stream": {"authentication": {"type": "plain", "kafkaUser": "fraudops-consumer"}}},
            'spec.stream.authentication.type: Unsupported value: "plain": supported values: "scram-sha-512"',
        ),
        (
            {"stream": {"authentication": {"type": "scram-sha-512"}}},
            "spec.stream.authentication.kafkaUser: Required value",
        ),
        (
            {"stream": {"authentication": {"type": "scram-sha-512", "kafkaUser": "Fraud_Consumer"}}},
            "spec.stream.authentication.kafkaUser in body should match",
        ),
        (
            {"stream": {"authentication": {"type": "scram-sha-512", "kafkaUser": "u", "tls": {}}}},
            "spec.stream.authentication.tls.caSecret: Required value",
        ),
        (
            {"candidate": declared(CANDIDATE, entityFeatures=True, labelDelayDays=5)},
            "spec.candidate.features: Invalid value: spec.candidate.features must have the stable's "
            "labelDelayDays and entityEpochSeconds",
        ),
        (
            {"stable": {**STABLE, "features": {"entityFeatures": True}}},
            "spec.stable.features are declared for no version, not for 2026-11-01: write 2026-11-01's features",
        ),
        (
            {"stable": declared(STABLE, entityFeatures=True, labelDelayDays=14)},
            "spec.stable.features.labelDelayDays: Invalid value: 14: spec.stable.features.labelDelayDays in "
            "body should be less than or equal to 9",
        ),
        (
            {"stable": declared(STABLE, labelDelayDays=0)},
            "spec.stable.features.labelDelayDays in body should be greater than 0",
        ),
        (
            {"stable": declared(STABLE, entityFeatures=True, entityLagEpochs=-1)},
            "spec.stable.features.entityLagEpochs in body should be greater than or equal to 0",
        ),
        (
            {"stable": declared(STABLE, entityFeatures=True, entityLagEpochs=MAX_ENTITY_LAG_EPOCHS + 1)},
            f"spec.stable.features.entityLagEpochs: Invalid value: {MAX_ENTITY_LAG_EPOCHS + 1}: "
            "spec.stable.features.entityLagEpochs in body should be less than or equal to "
            f"{MAX_ENTITY_LAG_EPOCHS}",
        ),
        (
            {"stable": declared(STABLE, entityFeatures=True, entityLagEpochs=1.5)},
            "spec.stable.features.entityLagEpochs in body must be of type integer",
        ),
        (
            {"stable": declared(STABLE, entityFeatures=True, entityLagEpochs="1")},
            "spec.stable.features.entityLagEpochs in body must be of type integer",
        ),
        (
            {
                "stable": declared(STABLE, entityFeatures=True, entityLagEpochs=1),
                "candidate": declared(CANDIDATE, entityFeatures=True, entityLagEpochs=0),
            },
            "spec.candidate.features.entityLagEpochs: Invalid value: spec.candidate.features must have the "
            "stable's entityLagEpochs when both versions have entityFeatures",
        ),
        (
            # stored before the field, the stable reads the table with no lag (the schema's default)
            {
                "stable": declared(STABLE, entityFeatures=True),
                "candidate": declared(CANDIDATE, entityFeatures=True, entityLagEpochs=1),
            },
            "must have the stable's entityLagEpochs when both versions have entityFeatures",
        ),
    ],
    ids=[
        "weight-over-100",
        "canary-without-stable",
        "unknown-strategy",
        "ab-weights-not-100",
        "decreasing-steps",
        "canary-without-steps",
        "more-consumers-than-partitions",
        "candidate-equals-stable",
        "promote-and-abort",
        "version-not-a-label",
        "kafka-authentication-unknown-type",
        "kafka-authentication-without-user",
        "kafka-authentication-user-not-a-name",
        "kafka-tls-without-ca",
        "candidate-features-unlike-the-stable",
        "features-for-no-version",
        "label-delay-beyond-the-entity-ring",
        "label-delay-zero",
        "entity-lag-negative",
        "entity-lag-beyond-the-maximum",
        "entity-lag-not-whole",
        "entity-lag-a-string",
        "candidate-entity-lag-unlike-the-stable",
        "candidate-entity-lag-unlike-a-stable-declared-before-the-field",
    ],
)
def test_an_invalid_fraud_model_is_rejected_with_the_schemas_message(
    cluster: Cluster, namespace: str, spec: dict[str, Any], message: str
) -> None:
    manifest = fraud_model(namespace, "invalid", **spec)
    manifest["spec"] = {k: v for k, v in manifest["spec"].items() if v is not None}
    error = cluster.try_create(manifest)
    assert message in error, error
    assert cluster.get("FraudModel", namespace, "invalid") is None  # nothing for the operator to see


@pytest.mark.parametrize(
    ("extra_columns", "message"),
    [
        (
            {"numeric": ["customer_age"], "categorical": ["mcc", "customer_age"]},
            "spec.extraColumns: Invalid value: a column is numeric or categorical, not both",
        ),
        ({"categorical": ["mcc", "mcc"]}, 'spec.extraColumns.categorical[1]: Duplicate value: "mcc"'),
        ({"numeric": ["3ds_result"]}, "spec.extraColumns.numeric[0] in body should match"),
        ({"categorical": ["pos-entry-mode"]}, "spec.extraColumns.categorical[0] in body should match"),
        (
            {"numeric": [f"n{i}" for i in range(20)], "categorical": [f"c{i}" for i in range(13)]},
            "at most 32 extra columns in all (numeric and categorical)",
        ),
        (
            {"numeric": [f"n{i}" for i in range(33)]},
            "spec.extraColumns.numeric: Too many: 33: must have at most 32 items",
        ),
    ],
    ids=[
        "in-both-lists",
        "twice-in-one-list",
        "starts-with-a-digit",
        "not-a-field-name",
        "too-many-in-all",
        "too-many",
    ],
)
def test_a_training_run_with_invalid_extra_columns_is_rejected_with_the_schemas_message(
    cluster: Cluster, namespace: str, extra_columns: dict[str, Any], message: str
) -> None:
    manifest = training_run(namespace, "invalid", fraud_model_name=None)
    manifest["spec"]["extraColumns"] = extra_columns
    error = cluster.try_create(manifest)
    assert message in error, error
    assert cluster.get("TrainingRun", namespace, "invalid") is None


def test_a_long_name_is_rejected_because_kserve_names_would_overflow(
    cluster: Cluster, namespace: str
) -> None:
    error = cluster.try_create(fraud_model(namespace, "a-fraud-model-with-a-very-long-name"))
    assert "FraudModel names are at most 28 characters" in error, error


NEXT = {"version": "2026-12-05", "modelUri": "s3://models/card-fraud/2026-12-05"}


def merge_patch(cluster: Cluster, namespace: str, spec: dict[str, Any]) -> str:
    """`kubectl patch --type merge` of the FraudModel's spec, as a platform engineer types it: its error
    output ('' if it was accepted)."""
    proc = cluster.server.kubectl(
        "patch",
        "fraudmodels.fraudops.io",
        "card-fraud",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": spec}),
        check=False,
    )
    return proc.stderr if proc.returncode != 0 else ""


def test_changing_the_candidate_with_promote_still_set_is_rejected(cluster: Cluster, namespace: str) -> None:
    cluster.apply(fraud_model(namespace, candidate=CANDIDATE, rollout={"promote": True}))
    error = merge_patch(cluster, namespace, {"candidate": NEXT})
    assert "set rollout.promote and rollout.abort to false when changing the candidate" in error, error


def test_a_merge_patch_of_a_new_candidate_without_its_features_is_refused_naming_both_versions(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(fraud_model(namespace, candidate=declared(CANDIDATE, entityFeatures=True)))

    error = merge_patch(cluster, namespace, {"candidate": NEXT})

    assert (
        "spec.candidate.features: Invalid value: spec.candidate.features are declared for "
        "2026-11-28, not for 2026-12-05: write 2026-12-05's features in the same patch" in error
    ), error
    assert cluster.must_get("FraudModel", namespace, "card-fraud")["spec"]["candidate"] == declared(
        CANDIDATE, entityFeatures=True, labelDelayDays=7, entityEpochSeconds=60, entityLagEpochs=0
    )


def test_a_merge_patch_of_a_new_candidate_with_its_own_features_or_none_is_accepted(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(fraud_model(namespace, candidate=declared(CANDIDATE, entityFeatures=True)))

    assert merge_patch(cluster, namespace, {"candidate": declared(NEXT, entityFeatures=False)}) == ""
    stored = cluster.must_get("FraudModel", namespace, "card-fraud")["spec"]["candidate"]
    assert stored["features"] == {
        "forVersion": NEXT["version"],
        "entityFeatures": False,
        "labelDelayDays": 7,
        "entityEpochSeconds": 60,
        "entityLagEpochs": 0,  # the schema's default: what declarations from before the field meant
    }

    # features: null removes the declaration: the version was trained with the defaults.
    later = {"version": "2026-12-09", "modelUri": "s3://models/card-fraud/2026-12-09"}
    assert merge_patch(cluster, namespace, {"candidate": {**later, "features": None}}) == ""
    assert cluster.must_get("FraudModel", namespace, "card-fraud")["spec"]["candidate"] == later


def test_every_entity_lag_from_zero_to_the_maximum_is_accepted_as_written(
    cluster: Cluster, namespace: str
) -> None:
    for lag in range(MAX_ENTITY_LAG_EPOCHS + 1):
        stable = declared(STABLE, entityFeatures=True, entityLagEpochs=lag)
        assert cluster.try_create(fraud_model(namespace, f"lag-{lag}", stable=stable)) == ""

    stored = {
        lag: cluster.must_get("FraudModel", namespace, f"lag-{lag}")["spec"]["stable"]["features"][
            "entityLagEpochs"
        ]
        for lag in range(MAX_ENTITY_LAG_EPOCHS + 1)
    }
    assert stored == {lag: lag for lag in range(MAX_ENTITY_LAG_EPOCHS + 1)}


@pytest.mark.parametrize(
    ("stable_reads_the_table", "candidate_reads_the_table", "candidate_lag"),
    [(True, False, 1), (False, True, 1), (False, False, 1), (True, True, 0)],
    ids=[
        "another-lag-only-the-stable-reads-the-entity-table",
        "another-lag-only-the-candidate-does",
        "another-lag-neither-does",
        "the-stables-lag-both-do",
    ],
)
def test_a_candidate_may_have_another_entity_lag_unless_both_read_the_entity_table(
    cluster: Cluster,
    namespace: str,
    stable_reads_the_table: bool,
    candidate_reads_the_table: bool,
    candidate_lag: int,
) -> None:
    manifest = fraud_model(
        namespace,
        stable=declared(STABLE, entityFeatures=stable_reads_the_table, entityLagEpochs=0),
        candidate=declared(
            CANDIDATE, entityFeatures=candidate_reads_the_table, entityLagEpochs=candidate_lag
        ),
    )

    assert cluster.try_create(manifest) == ""
    stored = cluster.must_get("FraudModel", namespace, "card-fraud")["spec"]
    lags = {role: stored[role]["features"]["entityLagEpochs"] for role in ("stable", "candidate")}
    assert lags == {"stable": 0, "candidate": candidate_lag}


def test_a_declaration_of_the_defaults_needs_no_version_whatever_its_entity_lag(
    cluster: Cluster, namespace: str
) -> None:
    # Without the entity features the model reads no entity table: 0 (before the lag) and 1 (since) both say
    # no more than no declaration.
    stable = {**STABLE, "features": {"entityFeatures": False, "entityLagEpochs": 1}}

    assert cluster.try_create(fraud_model(namespace, stable=stable)) == ""


def test_a_training_run_cannot_be_changed_once_created(cluster: Cluster, namespace: str) -> None:
    cluster.apply(training_run(namespace, "cf-v9", fraud_model_name=None))
    proc = cluster.server.kubectl(
        "patch",
        "trainingruns.fraudops.io",
        "cf-v9",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec": {"optuna": {"trials": 500}}}',
        check=False,
    )
    assert "a TrainingRun's spec is immutable: create a new TrainingRun" in proc.stderr, proc.stderr


def test_the_api_server_fills_in_exactly_the_defaults_crd_py_declares(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(fraud_model(namespace, "defaults"))
    stored = cluster.must_get("FraudModel", namespace, "defaults")["spec"]
    assert stored == crd.apply_defaults(crd.FRAUD_MODEL_SPEC, {"stable": STABLE})


def test_the_samples_are_valid(cluster: Cluster) -> None:
    cluster.server.kubectl("create", "namespace", "fraud")
    for sample in sorted((REPO_ROOT / "manifests" / "samples").glob("*.yaml")):
        cluster.server.kubectl(
            "apply", "--dry-run=server", "-f", str(sample)
        )  # raises with the API's message
