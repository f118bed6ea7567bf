"""The entity-state component of a FraudModel trained with the entity features, on the real API server:
created with the model's settings and owned by it, the consumer told to read its table, its readiness in
the status, retired when no routed version needs it, deleted with the model; and nothing of it for a model
trained without them. No kubelet runs pods here: where a test needs the component available, it plays the
Deployment controller by setting the Deployment's status, exactly as that controller would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fraudops.features.spec import DAY
from fraudops.routing import TrainedFeatures, load_routing_table
from tests.k8s.cluster import Cluster, condition
from tests.k8s.conftest import OperatorRunner
from tests.k8s.objects import STABLE, declared, fraud_model

pytestmark = pytest.mark.k8s

COMPONENT = "card-fraud-entity-state"
ENTITY_STABLE = declared(STABLE, entityFeatures=True, labelDelayDays=5, entityLagEpochs=1)
PLAIN_VERSION = {"version": "2026-12-01", "modelUri": "s3://models/card-fraud/2026-12-01"}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only


def consumer_env(cluster: Cluster, namespace: str) -> dict[str, str]:
    consumer = cluster.must_get("Deployment", namespace, "card-fraud-consumer")
    return {e["name"]: e.get("value", "") for e in container(consumer)["env"]}


def wait_for_condition(cluster: Cluster, namespace: str, type_: str, status: str | None) -> dict[str, Any]:
    """The FraudModel once its `type_` condition has `status` (None: once it has no such condition)."""

    def reached() -> dict[str, Any] | None:
        fm = cluster.get("FraudModel", namespace, "card-fraud")
        return fm if condition(fm, type_).get("status") == status else None

    return cluster.wait_for(reached, f"FraudModel card-fraud: {type_} {status}")


def make_available(cluster: Cluster, namespace: str) -> None:
    """What the Deployment controller writes once the pod of the current spec is ready."""
    generation = cluster.must_get("Deployment", namespace, COMPONENT)["metadata"]["generation"]
    cluster.patch(
        "Deployment",
        namespace,
        COMPONENT,
        {
            "status": {
                "observedGeneration": generation,
                "replicas": 1,
                "updatedReplicas": 1,
                "readyReplicas": 1,
                "availableReplicas": 1,
            }
        },
        status=True,
    )


def test_an_entity_feature_model_gets_an_owned_component_and_a_consumer_that_reads_its_table(
    cluster: Cluster, operator: OperatorRunner, namespace: str, tmp_path: Path
) -> None:
    cluster.apply(fraud_model(namespace, stable=ENTITY_STABLE))

    fm = wait_for_condition(cluster, namespace, "EntityStateReady", "False")

    component = cluster.must_get("Deployment", namespace, COMPONENT)
    [owner] = component["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("FraudModel", fm["metadata"]["uid"], True)
    assert (component["spec"]["replicas"], component["spec"]["strategy"]["type"]) == (1, "Recreate")
    command = container(component)["command"]
    assert command[:3] == ["fraudops", "stream", "entities"]
    assert command[command.index("--label-delay-days") + 1] == "5"
    assert command[command.index("--epoch-seconds") + 1] == "60"
    assert consumer_env(cluster, namespace)["ENTITY_TABLE"] == "true"
    routing_file = tmp_path / "routing.yaml"
    routing_file.write_text(
        cluster.must_get("ConfigMap", namespace, "card-fraud-routing")["data"]["routing.yaml"]
    )
    [stable] = load_routing_table(routing_file).variants  # as the consumer and the gateway read it
    assert stable.features == TrainedFeatures(
        entity_features=True, label_delay_s=5 * DAY, entity_lag_epochs=1
    )
    assert condition(fm, "Ready")["status"] == "True"
    assert condition(fm, "EntityStateReady")["reason"] == "Unavailable"

    make_available(cluster, namespace)

    fm = wait_for_condition(cluster, namespace, "EntityStateReady", "True")
    assert condition(fm, "EntityStateReady")["reason"] == "Available"


def test_the_component_is_restarted_when_stuck_and_counted_ready_only_once_caught_up(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    # /livez: making progress, or waiting for the table another instance holds (a standby must not be
    # restarted in a loop); /readyz: holding the table and published up to the end of its input — so
    # EntityStateReady says "caught up", not merely "running".
    cluster.apply(fraud_model(namespace, stable=ENTITY_STABLE))
    wait_for_condition(cluster, namespace, "EntityStateReady", "False")

    served = container(cluster.must_get("Deployment", namespace, COMPONENT))

    assert served["livenessProbe"]["httpGet"] == {"path": "/livez", "port": 9103, "scheme": "HTTP"}
    assert served["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 9103, "scheme": "HTTP"}
    assert {p["containerPort"] for p in served["ports"]} == {9103}, "the probes share the metrics port"
    # three failed probes 10 s apart on top of the component's own 120-s limit: a restart needs a real outage
    assert served["livenessProbe"]["periodSeconds"] * served["livenessProbe"]["failureThreshold"] == 30


def test_a_model_trained_without_entity_features_gets_no_component_and_no_entity_table(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    cluster.apply(fraud_model(namespace))

    fm = wait_for_condition(cluster, namespace, "Ready", "True")
    operator.wait_for_reconciles(namespace, 2)  # a tick more: nothing else appears

    assert cluster.get("Deployment", namespace, COMPONENT) is None
    assert "ENTITY_TABLE" not in consumer_env(cluster, namespace)
    assert condition(cluster.get("FraudModel", namespace, "card-fraud"), "EntityStateReady") == {}
    assert "features" not in fm["spec"]["stable"]  # declared nothing: the defaults


def test_the_component_is_retired_once_no_routed_version_needs_it(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    cluster.apply(fraud_model(namespace, stable=ENTITY_STABLE))
    cluster.wait_for(lambda: cluster.get("Deployment", namespace, COMPONENT), "the entity-state component")

    # A version trained without them replaces the stable (a different label delay cannot roll out against it).
    cluster.patch(
        "FraudModel",
        namespace,
        "card-fraud",
        {"spec": {"stable": declared(PLAIN_VERSION, entityFeatures=False, labelDelayDays=7)}},
    )

    cluster.wait_for(
        lambda: cluster.get("Deployment", namespace, COMPONENT) is None, "the component to be deleted"
    )
    fm = wait_for_condition(cluster, namespace, "EntityStateReady", None)
    assert fm["status"]["stableVersion"] == PLAIN_VERSION["version"]
    assert "ENTITY_TABLE" not in consumer_env(cluster, namespace)


def test_deleting_the_model_deletes_its_entity_state_component(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    cluster.apply(fraud_model(namespace, stable=ENTITY_STABLE))
    cluster.wait_for(lambda: cluster.get("Deployment", namespace, COMPONENT), "the entity-state component")

    cluster.delete("FraudModel", namespace, "card-fraud")

    cluster.wait_for(
        lambda: cluster.get("Deployment", namespace, COMPONENT) is None,
        "the garbage collector to delete the component",
        timeout_s=60,
    )
