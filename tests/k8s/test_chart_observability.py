"""The platform chart's observability objects, rendered by helm and judged by the real API server: the
Grafana dashboards as ConfigMaps the sidecar loads (exactly the generated JSON), the alert rules as a
PrometheusRule (exactly the groups promtool tests), and the OTEL_* settings in the gateway and the
operator; with the defaults, none of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.charts import CHARTS, helm, render
from tests.k8s.cluster import Cluster
from tests.k8s.test_charts import accepted

pytestmark = pytest.mark.k8s

FILES = CHARTS / "fraudops" / "files"
ALL_FEATURES = CHARTS / "fraudops" / "ci" / "all-features-values.yaml"
OPERATOR_ALL_FEATURES = CHARTS / "fraudops-operator" / "ci" / "all-features-values.yaml"


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def container_env(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
    [deployment] = [o for o in of_kind(objects, "Deployment") if o["metadata"]["name"] == name]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return render("fraudops", "fraud", ALL_FEATURES)


def test_each_dashboard_is_a_config_map_the_grafana_sidecar_loads_holding_the_generated_json(
    rendered: list[dict[str, Any]],
) -> None:
    maps = [
        m for m in of_kind(rendered, "ConfigMap") if m["metadata"]["name"].startswith("fraudops-dashboard-")
    ]
    shipped = {key: value for m in maps for key, value in m["data"].items()}
    generated = {path.name: path.read_text() for path in sorted((FILES / "dashboards").glob("*.json"))}

    assert (
        sorted(shipped)
        == sorted(generated)
        == [
            "fraudops-model.json",
            "fraudops-operator.json",
            "fraudops-overview.json",
        ]
    )
    for name, text in shipped.items():
        assert json.loads(text) == json.loads(generated[name]), name
    for config_map in maps:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["metadata"]["annotations"] == {"grafana_folder": "fraudops"}


def test_the_prometheus_rule_holds_the_rules_file_that_promtool_tests(rendered: list[dict[str, Any]]) -> None:
    [rule] = of_kind(rendered, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"] == yaml.safe_load((FILES / "rules" / "fraudops.rules.yaml").read_text())
    alerts = {r["alert"] for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r}
    assert {"FraudopsFeatureDrift", "FraudopsConsumerLagGrowing", "FraudopsPredictorDown"} <= alerts


def test_the_gateway_and_the_operator_export_traces_over_otlp_http_with_the_sampler(
    rendered: list[dict[str, Any]],
) -> None:
    gateway = container_env(rendered, "fraudops-gateway")
    operator = container_env(
        render("fraudops-operator", "fraud", OPERATOR_ALL_FEATURES), "fraudops-fraudops-operator"
    )
    for env, service in ((gateway, "fraudops-gateway"), (operator, "fraudops-operator")):
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability.svc:4318"
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"  # the only protocol the services speak
        assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
        assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.05"
        assert env["OTEL_SERVICE_NAME"] == service


def test_with_the_defaults_there_are_no_dashboards_rules_or_tracing() -> None:
    objects = render("fraudops", "fraud") + render("fraudops-operator", "fraud")
    assert not of_kind(objects, "PrometheusRule")
    assert not [m for m in of_kind(objects, "ConfigMap") if "grafana_dashboard" in m["metadata"]["labels"]]
    for deployment in of_kind(objects, "Deployment"):
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert not [e for e in container.get("env", []) if e["name"].startswith("OTEL_")]


def test_the_api_server_accepts_the_dashboards_and_the_prometheus_rule(
    cluster: Cluster, namespace: str
) -> None:
    """Server-side dry-run against the vendored Prometheus Operator CRD: the rule's schema, and a
    ConfigMap small enough to store (each dashboard well below the 1 MiB object limit)."""
    rendered = render("fraudops", namespace, ALL_FEATURES)
    observability = of_kind(rendered, "PrometheusRule") + [
        m for m in of_kind(rendered, "ConfigMap") if m["metadata"]["name"].startswith("fraudops-dashboard-")
    ]
    assert len(observability) == 4
    assert [accepted(cluster.server, o, namespace) for o in observability] == ["", "", "", ""]


def test_the_values_schema_refuses_the_grpc_protocol_the_services_do_not_speak(tmp_path: Path) -> None:

    values = tmp_path / "grpc.yaml"
    values.write_text(
        yaml.safe_dump({"observability": {"otlpEndpoint": "http://c:4317", "otlpProtocol": "grpc"}})
    )
    proc = helm("template", "fraudops", str(CHARTS / "fraudops"), "--values", str(values), check=False)
    assert proc.returncode != 0 and "otlpProtocol" in proc.stderr, proc.stderr


def test_the_scrapes_keep_the_labels_the_analysis_and_the_alerts_select_on(
    cluster: Cluster, namespace: str
) -> None:
    """The predictors' InferenceService becomes a target label (the p99-latency analysis selects on it);
    the operator's metrics keep their own FraudModel `namespace` (the rollback alert names it). Both
    objects are accepted by the API server against the vendored Prometheus Operator CRDs."""
    platform = render("fraudops", namespace, ALL_FEATURES)
    [predictors] = [
        m for m in of_kind(platform, "PodMonitor") if m["metadata"]["name"].endswith("-predictors")
    ]
    assert predictors["spec"]["podTargetLabels"] == ["serving.kserve.io/inferenceservice"]
    operator = render("fraudops-operator", namespace, OPERATOR_ALL_FEATURES)
    [monitor] = of_kind(operator, "ServiceMonitor")
    assert [endpoint.get("honorLabels") for endpoint in monitor["spec"]["endpoints"]] == [True]
    assert accepted(cluster.server, predictors, namespace) == ""
    assert accepted(cluster.server, monitor, namespace) == ""
