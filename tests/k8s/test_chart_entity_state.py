"""The platform chart and the entity-state component the operator runs: the chart's NetworkPolicies, Strimzi
listener, KafkaUser and PodMonitor let exactly the pods the operator builds (their labels and port taken
from `desired_entity_state_deployment`, not copied) reach Kafka and PostgreSQL and be scraped; the gateway
reads the entity table only when `gateway.entityTable` says so."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from fraudops_operator.desired import ENTITY_STATE_METRICS_PORT, desired_children
from fraudops_operator.rollout import next_state
from tests.k8s.charts import render
from tests.k8s.objects import STABLE, declared
from tests.unit.fraud_models import stored_fraud_model

pytestmark = pytest.mark.k8s


def component_pod_labels() -> dict[str, str]:
    """The labels of the entity-state pods the operator creates for a model trained with the entity features."""
    model = stored_fraud_model({"stable": declared(STABLE, entityFeatures=True)})
    children = desired_children(model, next_state(model, None, datetime.now(UTC)).state)
    [component] = [c for c in children if c["metadata"]["name"] == "card-fraud-entity-state"]
    return dict(component["spec"]["template"]["metadata"]["labels"])


def rendered(tmp_path: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return render("fraudops", "fraud", path)


def named(objects: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    return found


def selects(selector: dict[str, Any], pod_labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels only, as the chart writes them) selects these pod labels."""
    return bool(selector.get("matchLabels")) and all(
        pod_labels.get(k) == v for k, v in selector["matchLabels"].items()
    )


def test_the_network_policies_let_the_entity_state_pods_reach_kafka_and_postgresql_and_be_scraped(
    tmp_path: Path,
) -> None:
    pod = component_pod_labels()
    objects = rendered(tmp_path, {"networkPolicy": {"enabled": True}, "postgresql": {"enabled": True}})
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]

    own = [p for p in policies if selects(p["spec"]["podSelector"], pod)]
    assert [p["metadata"]["name"] for p in own] == ["fraudops-entity-state"]
    [policy] = own
    egress_ports = {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}
    assert egress_ports == {9092, 5432}
    [scrape] = policy["spec"]["ingress"]
    assert scrape["ports"] == [{"protocol": "TCP", "port": ENTITY_STATE_METRICS_PORT}]
    database = named(objects, "NetworkPolicy", "-postgresql")
    assert any(selects(peer["podSelector"], pod) for peer in database["spec"]["ingress"][0]["from"])
    listener = named(objects, "Kafka", "fraudops")["spec"]["kafka"]["listeners"][0]
    assert any(selects(peer.get("podSelector", {}), pod) for peer in listener["networkPolicyPeers"])


def test_the_bundled_broker_admits_the_entity_state_pods(tmp_path: Path) -> None:
    pod = component_pod_labels()
    objects = rendered(
        tmp_path,
        {
            "networkPolicy": {"enabled": True},
            "kafka": {"strimzi": {"enabled": False}, "bundled": {"enabled": True}},
        },
    )

    broker = named(objects, "NetworkPolicy", "-kafka")

    assert any(selects(peer.get("podSelector", {}), pod) for peer in broker["spec"]["ingress"][0]["from"])


def test_the_consumers_kafka_user_may_name_the_entity_state_components_group(tmp_path: Path) -> None:
    objects = rendered(tmp_path, {"kafka": {"strimzi": {"authentication": {"enabled": True}}}})

    user = named(objects, "KafkaUser", "fraudops-consumer")

    groups = {
        acl["resource"]["name"]
        for acl in user["spec"]["authorization"]["acls"]
        if acl["resource"]["type"] == "group"
    }
    # fraudops_stream.entity_component: the client's group id, never joined
    assert groups == {"fraud-scorer", "fraud-scorer-entity-state"}


def test_a_pod_monitor_scrapes_the_entity_state_pods_on_their_metrics_port(tmp_path: Path) -> None:
    pod = component_pod_labels()
    objects = rendered(tmp_path, {"monitoring": {"podMonitors": {"enabled": True}}})

    monitors = [o for o in objects if o["kind"] == "PodMonitor" and selects(o["spec"]["selector"], pod)]

    assert [m["spec"]["podMetricsEndpoints"][0]["port"] for m in monitors] == ["metrics"]


@pytest.mark.parametrize(("entity_table", "expected"), [(False, None), (True, "true")])
def test_the_gateway_reads_the_entity_table_only_when_the_value_says_so(
    tmp_path: Path, entity_table: bool, expected: str | None
) -> None:
    objects = rendered(tmp_path, {"gateway": {"entityTable": entity_table}})

    [container] = named(objects, "Deployment", "-gateway")["spec"]["template"]["spec"]["containers"]

    assert {e["name"]: e.get("value") for e in container["env"]}.get("ENTITY_TABLE") == expected
