"""A FraudModel whose stream logs in with a Strimzi KafkaUser, against the real API server and the upstream
Strimzi and KEDA CRDs: the consumer gets the password by reference (never its value), KEDA's ScaledObject a
TriggerAuthentication that the upstream schema accepts, and the chart's KafkaUser allows what the consumer does.

No Strimzi user operator runs here: the test writes the Secret that operator writes for a scram-sha-512
KafkaUser (named like the user, key `password`)."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from fraudops.config import Settings
from tests.k8s.charts import CHARTS, render
from tests.k8s.cluster import Cluster, condition
from tests.k8s.conftest import OperatorRunner
from tests.k8s.objects import fraud_model

pytestmark = pytest.mark.k8s

USER = "fraudops-consumer"
ALL_FEATURES = CHARTS / "fraudops" / "ci" / "all-features-values.yaml"


@pytest.fixture()
def password(cluster: Cluster, namespace: str) -> str:
    """The chart's consumer KafkaUser stored for real (the Strimzi schema accepts it), and its Secret."""
    cluster.apply(chart_kafka_user(namespace))
    value = secrets.token_urlsafe(24)
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": USER, "namespace": namespace},
            "stringData": {"password": value},
        }
    )
    return value


def chart_kafka_user(namespace: str) -> dict[str, Any]:
    [user] = [
        o
        for o in render("fraudops", namespace, values=ALL_FEATURES)
        if o["kind"] == "KafkaUser" and o["metadata"]["name"] == USER
    ]
    return user


def ready(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return cluster.wait_for(
        lambda: (
            (fm := cluster.get("FraudModel", namespace, "card-fraud"))
            and condition(fm, "Ready").get("status") == "True"
            and fm
        ),
        "the FraudModel Ready",
    )


def consumer_env(cluster: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    deployment = cluster.must_get("Deployment", namespace, "card-fraud-consumer")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container["env"]}


def test_the_consumer_and_keda_log_in_as_the_kafka_user_with_its_secret_by_reference(
    cluster: Cluster, operator: OperatorRunner, namespace: str, password: str
) -> None:
    authentication = {"type": "scram-sha-512", "kafkaUser": USER}
    cluster.apply(fraud_model(namespace, stream={"authentication": authentication}))
    fm = ready(cluster, namespace)

    env = consumer_env(cluster, namespace)
    assert env["KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_PLAINTEXT"
    assert env["KAFKA_SASL_USERNAME"]["value"] == USER
    assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": USER, "key": "password"}

    scaled = cluster.must_get("ScaledObject", namespace, "card-fraud-consumer")
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["metadata"]["sasl"] == "scram_sha512"
    auth = cluster.must_get("TriggerAuthentication", namespace, trigger["authenticationRef"]["name"])
    assert auth["metadata"]["ownerReferences"][0]["uid"] == fm["metadata"]["uid"]
    assert auth["spec"]["secretTargetRef"] == [{"parameter": "password", "name": USER, "key": "password"}]
    [username] = auth["spec"]["env"]
    assert (username["parameter"], env[username["name"]]["value"]) == ("username", USER)

    stored = json.dumps([consumer_env(cluster, namespace), scaled, auth])
    assert password not in stored, "the password itself was copied into an object"


def test_the_charts_consumer_user_may_do_exactly_what_the_consumer_does(
    cluster: Cluster, operator: OperatorRunner, namespace: str, password: str
) -> None:
    cluster.apply(
        fraud_model(namespace, stream={"authentication": {"type": "scram-sha-512", "kafkaUser": USER}})
    )
    ready(cluster, namespace)
    env = consumer_env(cluster, namespace)
    defaults = Settings.model_fields
    needed = {
        ("topic", env["TRANSACTIONS_TOPIC"]["value"], "Read"),
        ("group", env["CONSUMER_GROUP"]["value"], "Read"),
        # The operator leaves the alerts and dead-letter topics at the consumer's defaults.
        ("topic", defaults["alerts_topic"].default, "Write"),
        ("topic", defaults["dlq_topic"].default, "Write"),
    }

    acls = chart_kafka_user(namespace)["spec"]["authorization"]["acls"]
    granted = {
        (acl["resource"]["type"], acl["resource"]["name"], operation)
        for acl in acls
        for operation in acl["operations"]
        if acl["resource"]["patternType"] == "literal"
    }

    assert needed <= granted, needed - granted
    assert {operation for _, _, operation in granted} <= {"Describe", "Read", "Write"}, "nothing more"
