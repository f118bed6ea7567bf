"""The children a FraudModel wants: pure functions of its spec and rollout state."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fraudops.config import Settings
from fraudops.routing import VariantMode, load_routing_table
from fraudops_operator import crd
from fraudops_operator.desired import (
    ROUTING_KEY,
    desired_children,
    desired_consumer_deployment,
    desired_inference_service,
    desired_kafka_topic,
    desired_routing_config_map,
    desired_scaled_object,
    routing_table,
    served_versions,
    storage_problem,
    tracing_settings,
    volume_claim,
)
from fraudops_operator.resources import FraudModel
from fraudops_operator.rollout import Phase, RolloutState, next_state
from tests.unit.fraud_models import CANDIDATE, STABLE, fraud_model_body, stored_fraud_model

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def fraud_model(candidate: dict | None = CANDIDATE, **spec: Any) -> FraudModel:
    spec = {"stable": STABLE, **spec}
    if candidate is not None:
        spec["candidate"] = candidate
    return stored_fraud_model(spec, generation=3)


def in_rollout(model: FraudModel) -> RolloutState:
    return next_state(model, None, T0).state


def test_a_stable_model_routes_everything_to_its_predictor() -> None:
    model = fraud_model(candidate=None)
    table = routing_table(model, next_state(model, None, T0).state)
    assert table is not None
    [stable] = table.variants
    assert (stable.name, stable.model_version, stable.weight, stable.mode) == (
        "stable",
        "2026-11-01",
        100,
        "serve",
    )
    assert stable.endpoint == "http://card-fraud-2026-11-01-predictor.fraud.svc.cluster.local"


def test_a_canary_splits_decisions_per_transaction_at_the_step_weight() -> None:
    model = fraud_model(rollout={"steps": [{"weight": 10, "pause": "1m"}]})
    table = routing_table(model, in_rollout(model))
    assert table is not None
    assert [(v.name, v.mode, v.weight) for v in table.variants] == [
        ("stable", "serve", 90),
        ("canary", "serve", 10),
    ]
    assert table.salt == "2026-11-28"


def test_an_ab_test_splits_decisions_per_customer() -> None:
    model = fraud_model(rollout={"strategy": "abTest", "abTest": {"stableWeight": 80, "candidateWeight": 20}})
    table = routing_table(model, in_rollout(model))
    assert table is not None
    assert [(v.name, v.mode, v.weight) for v in table.variants] == [
        ("stable", "ab", 80),
        ("challenger", "ab", 20),
    ]


def test_a_shadow_run_scores_with_the_candidate_without_deciding() -> None:
    model = fraud_model(rollout={"strategy": "shadow"})
    table = routing_table(model, in_rollout(model))
    assert table is not None
    assert [v.name for v in table.deciding] == ["stable"] and table.deciding[0].weight == 100
    assert [(v.name, v.mode) for v in table.shadows] == [("challenger", VariantMode.SHADOW)]


def test_after_promotion_the_candidate_alone_serves_as_stable() -> None:
    model = fraud_model()
    promoted = RolloutState(Phase.PROMOTED, candidate_version="2026-11-28")
    assert [v.version for v in served_versions(model, promoted)] == ["2026-11-28"]
    table = routing_table(model, promoted)
    assert table is not None and [(v.name, v.model_version) for v in table.variants] == [
        ("stable", "2026-11-28")
    ]


def test_after_a_rollback_only_the_stable_version_is_served() -> None:
    model = fraud_model()
    rolled_back = RolloutState(Phase.ROLLED_BACK, candidate_version="2026-11-28")
    assert [v.version for v in served_versions(model, rolled_back)] == ["2026-11-01"]


def test_the_routing_config_map_is_the_table_the_services_load(tmp_path: Path) -> None:
    model = fraud_model(rollout={"steps": [{"weight": 25}]})
    table = routing_table(model, in_rollout(model))
    assert table is not None
    path = tmp_path / ROUTING_KEY
    path.write_text(desired_routing_config_map(model, table)["data"][ROUTING_KEY])
    assert load_routing_table(path) == table


def test_each_version_gets_a_standard_mode_inference_service_running_our_predictor() -> None:
    model = fraud_model(threshold=0.3)
    assert model.candidate is not None
    isvc = desired_inference_service(model, model.candidate)
    assert isvc["metadata"]["name"] == "card-fraud-2026-11-28"
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert isvc["metadata"]["ownerReferences"][0]["uid"] == "u1"
    [container] = isvc["spec"]["predictor"]["containers"]
    assert container["command"] == ["python", "-m", "fraudops_predictor"]
    assert container["args"][:4] == ["--model_name", "card-fraud", "--model_dir", "/mnt/models"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["STORAGE_URI"] == "s3://models/card-fraud/2026-11-28" and env["FRAUD_THRESHOLD"] == "0.3"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/models/card-fraud/ready"
    assert container["resources"]["requests"]["cpu"] == "500m"


def test_the_consumer_reads_the_mounted_table_and_leaves_its_replica_count_to_keda() -> None:
    model = fraud_model(candidate=None)
    table = routing_table(model, next_state(model, None, T0).state)
    assert table is not None
    deployment = desired_consumer_deployment(model, table)
    assert "replicas" not in deployment["spec"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["DB_URL"]["valueFrom"]["secretKeyRef"] == {"name": "fraudops-db", "key": "url"}
    assert env["ROUTING_TABLE_PATH"]["value"] == "/etc/fraudops/routing/routing.yaml"
    # Qualified with the namespace: KEDA's operator resolves it from another namespace.
    assert env["KAFKA_BOOTSTRAP_SERVERS"]["value"] == "fraudops-kafka-bootstrap.fraud.svc:9092"
    assert container["command"] == ["fraudops", "stream", "consume", "--metrics-port", "9102"]


def test_a_new_routing_table_rolls_the_consumer_pods() -> None:
    model = fraud_model()
    stable_table = routing_table(model, RolloutState(Phase.STABLE))
    canary_table = routing_table(model, in_rollout(model))
    assert stable_table is not None and canary_table is not None

    def checksum(table: Any) -> str:
        return desired_consumer_deployment(model, table)["spec"]["template"]["metadata"]["annotations"][
            "fraudops.io/routing-checksum"
        ]

    assert checksum(stable_table) != checksum(canary_table)


def test_keda_scales_the_consumer_on_the_groups_lag() -> None:
    model = fraud_model(stream={"partitions": 12, "maxReplicas": 12, "lagThreshold": 5000})
    scaled = desired_scaled_object(model)
    assert scaled["spec"]["maxReplicaCount"] == 12
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"] == {
        "bootstrapServers": "fraudops-kafka-bootstrap.fraud.svc:9092",  # KEDA dials it from its own namespace
        "consumerGroup": "fraud-scorer",
        "topic": "transactions",
        "lagThreshold": "5000",
        "offsetResetPolicy": "earliest",
    }


def test_the_kafka_topic_belongs_to_the_strimzi_cluster() -> None:
    topic = desired_kafka_topic(
        fraud_model(stream={"kafkaCluster": "main", "partitions": 3, "maxReplicas": 3})
    )
    assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "main"
    assert topic["spec"] == {"topicName": "transactions", "partitions": 3, "replicas": 1}


def test_inference_services_come_before_the_table_that_routes_to_them() -> None:
    model = fraud_model()
    kinds = [c["kind"] for c in desired_children(model, in_rollout(model))]
    assert kinds == [
        "KafkaTopic",
        "InferenceService",
        "InferenceService",
        "ConfigMap",
        "Deployment",
        "ScaledObject",
    ]


def test_artifact_uris_kserve_cannot_read_are_named() -> None:
    assert storage_problem("s3://models/x") is None
    problem = storage_problem("ftp://models/x")
    assert problem is not None and "ftp://" in problem
    assert volume_claim("pvc://models/card-fraud/v1") == "models"
    assert volume_claim("s3://models/x") is None


def workload_env(children: list[dict[str, Any]], kind: str) -> list[dict[str, str]]:
    """The environment of the first container of every child of `kind` (InferenceService or Deployment)."""
    specs = [
        c["spec"]["predictor"] if kind == "InferenceService" else c["spec"]["template"]["spec"]
        for c in children
        if c["kind"] == kind
    ]
    assert specs, f"no {kind}"
    return [{e["name"]: e.get("value") for e in spec["containers"][0]["env"]} for spec in specs]


def test_the_consumer_and_the_predictors_trace_with_the_operators_exporter_under_their_own_names() -> None:
    model = fraud_model()
    operator_env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4318",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.01",
        "OTEL_SERVICE_NAME": "fraudops-operator",
        "HOME": "/home/operator",
    }
    children = desired_children(model, in_rollout(model), tracing_settings(operator_env))

    for kind, service in (("Deployment", "fraudops-stream"), ("InferenceService", "fraudops-predictor")):
        for env in workload_env(children, kind):
            assert {k: v for k, v in env.items() if k.startswith("OTEL_")} == {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4318",
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.01",
                "OTEL_SERVICE_NAME": service,
            }, kind


def test_without_an_exporter_the_workloads_get_no_tracing_variables() -> None:
    model = fraud_model()
    children = desired_children(model, in_rollout(model), tracing_settings({"HOME": "/home/operator"}))
    for kind in ("Deployment", "InferenceService"):
        for env in workload_env(children, kind):
            assert env and not [name for name in env if name.startswith("OTEL_")], kind


SCRAM_USER = {"type": "scram-sha-512", "kafkaUser": "fraudops-consumer"}


def consumer_env(model: FraudModel) -> dict[str, dict[str, Any]]:
    table = routing_table(model, next_state(model, None, T0).state)
    assert table is not None
    [container] = desired_consumer_deployment(model, table)["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container["env"]}


def test_the_consumer_publishes_to_the_alerts_and_dead_letter_topics_the_model_names() -> None:
    defaults = consumer_env(fraud_model(candidate=None))
    named = consumer_env(
        fraud_model(candidate=None, stream={"alertsTopic": "bank-alerts", "dlqTopic": "bank-tx.dlq"})
    )

    # Unset, they are the consumer's own defaults (what the chart's topics Job and KafkaUser ACLs name).
    assert (defaults["ALERTS_TOPIC"]["value"], defaults["DLQ_TOPIC"]["value"]) == (
        Settings.model_fields["alerts_topic"].default,
        Settings.model_fields["dlq_topic"].default,
    )
    assert (named["ALERTS_TOPIC"]["value"], named["DLQ_TOPIC"]["value"]) == ("bank-alerts", "bank-tx.dlq")


def test_without_authentication_the_consumer_and_keda_get_no_credentials() -> None:
    model = fraud_model(candidate=None)
    assert not [name for name in consumer_env(model) if name.startswith(("KAFKA_SASL", "KAFKA_SECURITY"))]
    assert "authenticationRef" not in desired_scaled_object(model)["spec"]["triggers"][0]
    assert "TriggerAuthentication" not in {
        c["kind"] for c in desired_children(model, RolloutState(Phase.STABLE))
    }


def test_a_kafka_user_logs_the_consumer_in_with_the_password_from_its_secret_by_reference() -> None:
    env = consumer_env(fraud_model(candidate=None, stream={"authentication": SCRAM_USER}))

    assert env["KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_PLAINTEXT"
    assert env["KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
    assert env["KAFKA_SASL_USERNAME"]["value"] == "fraudops-consumer"
    # Strimzi's user operator writes the password to a Secret named like the KafkaUser.
    assert env["KAFKA_SASL_PASSWORD"] == {
        "name": "KAFKA_SASL_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "fraudops-consumer", "key": "password"}},
    }


def test_keda_logs_in_as_the_consumer_through_a_trigger_authentication() -> None:
    model = fraud_model(candidate=None, stream={"authentication": SCRAM_USER})
    children = desired_children(model, RolloutState(Phase.STABLE))
    kinds = [c["kind"] for c in children]
    [auth] = [c for c in children if c["kind"] == "TriggerAuthentication"]
    [trigger] = desired_scaled_object(model)["spec"]["triggers"]

    assert kinds.index("TriggerAuthentication") < kinds.index("ScaledObject"), "it exists before it is named"
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    assert (trigger["metadata"]["sasl"], trigger["metadata"]["tls"]) == ("scram_sha512", "disable")
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "password", "name": "fraudops-consumer", "key": "password"}
    ]
    [username] = auth["spec"]["env"]
    assert (
        consumer_env(model)[username["name"]]["value"] == "fraudops-consumer"
        and username["parameter"] == "username"
    )


def test_a_tls_listener_adds_the_cluster_ca_to_the_consumer_and_keda() -> None:
    authentication = {
        **SCRAM_USER,
        "passwordSecret": {"name": "rotated-password", "key": "pw"},
        "tls": {"caSecret": {"name": "fraudops-cluster-ca-cert"}},
    }
    model = fraud_model(candidate=None, stream={"authentication": authentication})
    env = consumer_env(model)
    [auth] = [
        c for c in desired_children(model, RolloutState(Phase.STABLE)) if c["kind"] == "TriggerAuthentication"
    ]

    assert env["KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env["KAFKA_SSL_CA_PEM"]["valueFrom"]["secretKeyRef"] == {
        "name": "fraudops-cluster-ca-cert",
        "key": "ca.crt",
    }
    assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "rotated-password",
        "key": "pw",
    }
    assert {"parameter": "ca", "name": "fraudops-cluster-ca-cert", "key": "ca.crt"} in auth["spec"][
        "secretTargetRef"
    ]
    assert desired_scaled_object(model)["spec"]["triggers"][0]["metadata"]["tls"] == "enable"


def test_the_predictor_pods_ask_prometheus_to_scrape_the_predictors_own_port() -> None:
    """KServe copies these annotations to the predictor pods. Its own `enable-prometheus-scraping` would
    point at port 9091 with no `prometheus.io/scrape`: the rollout analysis then had no latency or score
    data (seen on the e2e cluster)."""
    model = fraud_model()
    assert model.candidate is not None
    annotations = desired_inference_service(model, model.candidate)["metadata"]["annotations"]
    [container] = desired_inference_service(model, model.candidate)["spec"]["predictor"]["containers"]
    assert annotations["serving.kserve.io/enable-prometheus-scraping"] == "false"
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(container["ports"][0]["containerPort"])
    assert annotations["prometheus.io/path"] == "/metrics"


def test_an_object_stored_under_the_crd_before_the_topic_fields_gets_the_default_topics() -> None:
    """Helm never upgrades `crds/`: after an upgrade the API server neither defaults nor stores the new
    fields, and reading them raised KeyError on every reconcile."""
    spec = crd.apply_defaults(crd.FRAUD_MODEL_SPEC, {"stable": STABLE})
    for field in ("alertsTopic", "dlqTopic"):
        del spec["stream"][field]
    stream = FraudModel.from_body(fraud_model_body(spec)).stream
    assert (stream.alerts_topic, stream.dlq_topic) == (Settings().alerts_topic, Settings().dlq_topic)
