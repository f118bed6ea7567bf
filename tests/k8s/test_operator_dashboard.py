"""Every panel of the operator dashboard against live metrics: the operator (in this process) takes a
canary through analysis to a rollback on the real API server, a real Prometheus scrapes the operator's
metrics endpoint, and each panel's query must return data using only metric names the operator exports."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import prometheus_client
import pytest

from fraudops_monitoring.dashboards import rollouts
from tests.integration.test_dashboards_live import exported_names, panel_queries, unanswered, unexported
from tests.k8s.cluster import Cluster
from tests.k8s.conftest import OperatorRunner
from tests.k8s.prometheus import LocalPrometheus, TrafficExporter
from tests.k8s.test_rollout import send, start_canary, wait_phase
from tests.prometheus import free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.k8s


@dataclass
class OperatorMetrics:
    url: str  # the operator's /metrics endpoint, without the path
    prometheus: LocalPrometheus  # scraping it


@pytest.fixture(scope="module")
def operator_metrics() -> Iterator[OperatorMetrics]:
    """The operator's metrics served as its Deployment serves them, scraped by a Prometheus of its own."""
    port = free_port()
    server, thread = prometheus_client.start_http_server(port, addr="127.0.0.1")
    scraper = LocalPrometheus({"fraudops-operator": [f"127.0.0.1:{port}"]}).start()
    try:
        yield OperatorMetrics(f"http://127.0.0.1:{port}", scraper)
    finally:
        scraper.stop()
        server.shutdown()
        thread.join(timeout=10)


def test_every_operator_panel_returns_data_after_a_rollback(
    cluster: Cluster,
    operator: OperatorRunner,
    prometheus: LocalPrometheus,
    traffic: TrafficExporter,
    namespace: str,
    operator_metrics: OperatorMetrics,
) -> None:
    send(traffic, namespace, "stable", "2026-11-01", decisions_per_s=200)
    send(traffic, namespace, "canary", "2026-11-28", decisions_per_s=200, error_rate=0.05)
    start_canary(
        cluster, namespace, [{"weight": 10, "pause": "1s"}, {"weight": 30, "analysis": True}], prometheus.url
    )
    wait_phase(cluster, namespace, "RolledBack")

    queries = panel_queries(rollouts())
    unknown = unexported(queries, exported_names({"fraudops-operator": operator_metrics.url}))
    scraped = operator_metrics.prometheus
    missing = unanswered(scraped, queries, timeout_s=60)
    assert unknown == [], "metric names the operator does not export"
    assert missing == [], "queries without data"
    # And what they show is this rollout: its FraudModel in phase RolledBack, its candidate at weight 0.
    # The panels may have data from a scrape taken before the rollback was recorded, so wait for the
    # next scrapes (every second) to carry the final phase and weight.
    here = f'namespace="{namespace}",fraudmodel="card-fraud"'
    weights: list[float] = []

    def shows_the_rollback() -> bool:
        weights[:] = [
            float(s["value"][1]) for s in scraped.query(f"fraudops_rollout_candidate_weight{{{here}}}")
        ]
        return bool(
            scraped.query(f'fraudops_rollout_phase{{{here},phase="RolledBack"}} == 1')
        ) and weights == [0.0]

    wait_until(
        shows_the_rollback,
        30,
        lambda: f"Prometheus to show phase RolledBack and candidate weight [0.0] (weights: {weights})",
        interval_s=0.5,
    )
