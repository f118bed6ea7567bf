"""A FraudModel whose versions were trained with the entity features: the entity-state component it gets,
the consumer that reads its table, what the routing table and the predictors are told, and the status
condition that reports the component (pure parts; tests/k8s/test_entity_state.py runs them for real)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fraudops.features.spec import DAY, MAX_ENTITY_LAG_EPOCHS
from fraudops.routing import TrainedFeatures, load_routing_table
from fraudops_operator import crd
from fraudops_operator.desired import (
    ROUTING_KEY,
    desired_children,
    desired_inference_service,
    desired_routing_config_map,
    routing_table,
)
from fraudops_operator.resources import FraudModel, ModelVersion, version_spec
from fraudops_operator.rollout import Phase, RolloutState, next_state
from fraudops_operator.status import Readiness, entity_state_readiness, fraud_model_status
from tests.unit.fraud_models import CANDIDATE, STABLE, fraud_model_body, stored_fraud_model

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
# as a TrainingRun hands a version trained now over (models trained before the entity lag record 0)
ENTITY_FEATURES = {"entityFeatures": True, "labelDelayDays": 5, "entityLagEpochs": 1}
SCRAM_USER = {"type": "scram-sha-512", "kafkaUser": "fraudops-consumer"}


def fraud_model(
    stable: dict[str, Any] = STABLE, candidate: dict[str, Any] | None = None, **spec: Any
) -> FraudModel:
    return stored_fraud_model({"stable": stable, **({"candidate": candidate} if candidate else {}), **spec})


def with_entity_features(version: dict[str, Any], **features: Any) -> dict[str, Any]:
    return {**version, "features": {"forVersion": version["version"], **ENTITY_FEATURES, **features}}


def children(model: FraudModel, state: RolloutState | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    state = state or next_state(model, None, T0).state
    return {(c["kind"], c["metadata"]["name"]): c for c in desired_children(model, state)}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(deployment)["env"]}


def test_an_entity_feature_model_gets_one_entity_state_component_started_with_its_settings() -> None:
    model = fraud_model(with_entity_features(STABLE, entityEpochSeconds=30))

    component = children(model)[("Deployment", "card-fraud-entity-state")]

    assert component["spec"]["replicas"] == 1
    assert component["spec"]["strategy"] == {"type": "Recreate"}, "never two writers during a rollout"
    assert component["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert component["metadata"]["labels"]["app.kubernetes.io/name"] == "fraudops-entity-state"
    assert container(component)["command"] == [
        "fraudops",
        "stream",
        "entities",
        "--metrics-port",
        "9103",
        "--label-delay-days",
        "5",
        "--epoch-seconds",
        "30",
        "--snapshot-every",
        "240",
        "--retain-epochs",
        "1440",
    ]
    # alive: progressing, or waiting for the table another instance holds; ready: holding it and caught up
    assert container(component)["livenessProbe"]["httpGet"] == {"path": "/livez", "port": 9103}
    assert container(component)["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 9103}
    variables = env(component)
    assert variables["DB_URL"]["valueFrom"]["secretKeyRef"] == {"name": "fraudops-db", "key": "url"}
    assert variables["TRANSACTIONS_TOPIC"]["value"] == "transactions"
    assert variables["KAFKA_BOOTSTRAP_SERVERS"]["value"] == "fraudops-kafka-bootstrap.fraud.svc:9092"


def test_the_consumer_of_an_entity_feature_model_reads_the_table_and_comes_after_the_component() -> None:
    model = fraud_model(with_entity_features(STABLE))
    ordered = [
        (c["kind"], c["metadata"]["name"]) for c in desired_children(model, RolloutState(Phase.STABLE))
    ]

    consumer = children(model)[("Deployment", "card-fraud-consumer")]

    assert env(consumer)["ENTITY_TABLE"] == {"name": "ENTITY_TABLE", "value": "true"}
    assert ordered.index(("Deployment", "card-fraud-entity-state")) < ordered.index(
        ("Deployment", "card-fraud-consumer")
    )


def test_a_model_without_entity_features_gets_no_component_and_no_entity_table() -> None:
    model = fraud_model()

    kids = children(model)

    assert ("Deployment", "card-fraud-entity-state") not in kids
    assert "ENTITY_TABLE" not in env(kids[("Deployment", "card-fraud-consumer")])


def test_the_component_runs_while_a_routed_candidate_needs_it_and_goes_with_its_rollback() -> None:
    model = fraud_model(STABLE, with_entity_features(CANDIDATE, labelDelayDays=7))
    in_rollout = next_state(model, None, T0).state
    rolled_back = RolloutState(Phase.ROLLED_BACK, candidate_version=CANDIDATE["version"])

    assert ("Deployment", "card-fraud-entity-state") in children(model, in_rollout)
    assert ("Deployment", "card-fraud-entity-state") not in children(model, rolled_back)
    assert "ENTITY_TABLE" not in env(children(model, rolled_back)[("Deployment", "card-fraud-consumer")])


def test_the_component_logs_in_to_the_broker_as_the_consumer_does() -> None:
    model = fraud_model(with_entity_features(STABLE), stream={"authentication": SCRAM_USER})
    kids = children(model)

    def login(name: str) -> dict[str, Any]:
        return {k: v for k, v in env(kids[("Deployment", name)]).items() if k.startswith("KAFKA_S")}

    assert login("card-fraud-entity-state") == login("card-fraud-consumer")
    assert login("card-fraud-entity-state")["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "fraudops-consumer",
        "key": "password",
    }


def test_the_routing_table_says_what_each_version_was_trained_with_and_loads_as_the_services_read_it(
    tmp_path: Path,
) -> None:
    model = fraud_model(STABLE, with_entity_features(CANDIDATE, labelDelayDays=7))
    table = routing_table(model, next_state(model, None, T0).state)
    assert table is not None
    path = tmp_path / ROUTING_KEY
    path.write_text(desired_routing_config_map(model, table)["data"][ROUTING_KEY])

    stable, canary = load_routing_table(path).variants

    # The defaults are left out: tables of plain models stay readable by images from before the field.
    assert stable.features is None
    assert canary.features == TrainedFeatures(entity_features=True, label_delay_s=7 * DAY, entity_epoch_s=60)


def test_each_predictor_is_told_what_its_version_was_trained_with() -> None:
    model = fraud_model(with_entity_features(STABLE))
    assert model.stable is not None

    [predictor] = desired_inference_service(model, model.stable)["spec"]["predictor"]["containers"]

    declared = predictor["args"][predictor["args"].index("--trained_features") + 1]
    assert TrainedFeatures.model_validate_json(declared) == TrainedFeatures(
        entity_features=True, label_delay_s=5 * DAY
    )
    assert json.loads(declared)["entity_features"] is True


def test_a_version_that_declares_no_features_was_trained_with_the_defaults() -> None:
    # (as a version stored under a CRD from before the features field, or written without them)
    spec = crd.apply_defaults(crd.FRAUD_MODEL_SPEC, {"stable": STABLE})
    assert "features" not in spec["stable"]
    del spec["stream"]["entityState"]

    model = FraudModel.from_body(fraud_model_body(spec))

    assert model.stable is not None and model.stable.features == TrainedFeatures()
    assert model.stream.entity_state.retain_epochs == 1440


def test_a_declaration_stored_before_the_entity_lag_says_the_model_reads_the_table_with_none() -> None:
    version = {**STABLE, "features": {"forVersion": STABLE["version"], "entityFeatures": True}}
    defaulted = crd.apply_defaults(crd.FRAUD_MODEL_SPEC, {"stable": version})  # as the API server returns it
    before_the_field = copy.deepcopy(defaulted)  # as it returned it under a CRD without the field
    del before_the_field["stable"]["features"]["entityLagEpochs"]

    for spec in (before_the_field, defaulted):
        model = FraudModel.from_body(fraud_model_body(spec))
        assert model.stable is not None and model.stable.features.entity_lag_epochs == 0
    assert defaulted["stable"]["features"]["entityLagEpochs"] == crd.UNDECLARED_ENTITY_LAG_EPOCHS


def test_the_declared_entity_lag_reaches_the_routing_table_and_the_predictor(tmp_path: Path) -> None:
    model = fraud_model(with_entity_features(STABLE, entityLagEpochs=3))
    assert model.stable is not None
    table = routing_table(model, next_state(model, None, T0).state)
    assert table is not None
    path = tmp_path / ROUTING_KEY
    path.write_text(desired_routing_config_map(model, table)["data"][ROUTING_KEY])

    [stable] = load_routing_table(path).variants
    [predictor] = desired_inference_service(model, model.stable)["spec"]["predictor"]["containers"]
    declared = predictor["args"][predictor["args"].index("--trained_features") + 1]

    assert stable.features is not None and stable.features.entity_lag_epochs == 3
    assert TrainedFeatures.model_validate_json(declared).entity_lag_epochs == 3


def test_a_version_spec_writes_the_entity_lag_it_was_read_with() -> None:
    for lag in (0, 1, MAX_ENTITY_LAG_EPOCHS):
        version = with_entity_features(STABLE, entityLagEpochs=lag, entityEpochSeconds=60.0)
        read = ModelVersion.from_spec(version)
        assert read is not None and version_spec(read) == version


def test_without_the_entity_features_the_lag_leaves_a_version_at_the_defaults_in_the_routing_table() -> None:
    # A hand-over from before the lag wrote the defaults in full (the API server reads the lag as 0); one
    # since writes 1. Neither model reads the entity table: the table says nothing about either.
    for lag in (0, 1):
        plain = {**STABLE, "features": {"forVersion": STABLE["version"], "entityLagEpochs": lag}}
        model = fraud_model(plain)
        table = routing_table(model, next_state(model, None, T0).state)
        assert table is not None
        [stable] = table.variants
        assert stable.features is None


def deployment(generation: int = 2, **status: int) -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "status": {"observedGeneration": generation, **status}}


def test_the_component_is_ready_once_its_replica_of_the_current_spec_is_available() -> None:
    name = "card-fraud-entity-state"

    assert entity_state_readiness(name, deployment(updatedReplicas=1, availableReplicas=1)).ready
    assert entity_state_readiness(name, None).reason == "NotCreated"
    starting = entity_state_readiness(name, deployment(updatedReplicas=1, availableReplicas=0))
    assert (starting.ready, starting.reason) == (False, "Unavailable")
    assert "the consumers wait for the entity table" in starting.message
    stale = deployment(updatedReplicas=1, availableReplicas=1)
    stale["metadata"]["generation"] = 3  # a new spec the Deployment controller has not acted on yet
    assert not entity_state_readiness(name, stale).ready


def test_the_entity_state_condition_is_reported_while_the_component_runs_and_removed_after() -> None:
    model = fraud_model(with_entity_features(STABLE))
    state = next_state(model, None, T0).state
    reconciled = Readiness(True, "Reconciled", "applied")
    available = Readiness(True, "Available", "Deployment card-fraud-entity-state has its replica available")

    running = fraud_model_status(model, state, reconciled, {}, None, T0, available)
    without = fraud_model_status(fraud_model(), state, reconciled, running, None, T0, None)

    condition = next(c for c in running["conditions"] if c["type"] == "EntityStateReady")
    assert (condition["status"], condition["reason"]) == ("True", "Available")
    assert "EntityStateReady" not in [c["type"] for c in without["conditions"]]
