"""Every panel of the platform and model dashboards against live metrics, and a drift alert that fires.

The real predictor, gateway and stream consumer run on loopback with real PostgreSQL and Kafka and a
model trained with its drift reference; a real Prometheus (Debian's) scrapes the three (jobs named
as the chart's monitors name them) and evaluates the chart's alert rules. Traffic: simulated transactions
through Kafka (a few invalid ones for the DLQ), /predict calls (a few invalid), a V2 call to the
predictor, and labels on /feedback in two rounds (so their counters increase between scrapes).

Then every query of every panel (Grafana's variables filled in as "all") must return at least one
sample, and every metric name it uses must be one a service exported. Finally transactions with
tripled amounts must make FraudopsFeatureDrift fire in Prometheus. The operator dashboard's
metrics come from the operator, which these tests do not run (see tests/k8s).
"""

from __future__ import annotations

import contextlib
import math
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from grafana_foundation_sdk.builders import dashboard
from prometheus_client.parser import text_string_to_metric_families

from fraudops.features.spec import N_FEATURES
from fraudops_infra.stack import LocalStack
from fraudops_monitoring.dashboards import model, platform_overview
from fraudops_monitoring.grafana import panels_of, to_json
from tests.conftest import REPO_ROOT
from tests.integration.conftest import free_port
from tests.integration.streaming import consume_command, fresh_topics, produce
from tests.integration.test_gateway_support import MODEL_NAME, base_env, gateway, migrated_database, serving
from tests.prometheus import LocalPrometheus
from tests.waiting import WaitTimedOut, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.live, pytest.mark.timeout(1800)]
RULES = REPO_ROOT / "charts" / "fraudops" / "files" / "rules" / "fraudops.rules.yaml"
# What Grafana puts in for "All" and for the rate window of a dashboard showing the last hour or so: a
# window that still holds the traffic sent when the fixture started.
GRAFANA_VARIABLES = {
    "$__rate_interval": "10m",
    "$model_version": ".*",
    "$variant": ".*",
    "$fraudmodel": ".*",
}


@dataclass
class Live:
    prometheus: LocalPrometheus
    targets: dict[str, str]  # job -> base URL
    gateway_url: str
    database: str
    topic: str
    bootstrap: str


def simulated(transactions: int, seed: int, amount_scale: float = 1.0) -> list[tuple[str, bytes]]:
    from fraudops_simulator import SimulationConfig, simulate
    from fraudops_simulator.kafka import encode_records

    records = []
    for table in simulate(
        SimulationConfig(
            transactions=transactions,
            customers=max(transactions // 30, 10),
            days=10,
            seed=seed,
            fraud_rate=0.05,
        )
    ):
        for key, value in zip(table.column("customer_id").to_pylist(), encode_records(table), strict=True):
            record = orjson.loads(value)
            record["amount"] = round(record["amount"] * amount_scale, 2)
            records.append((key, orjson.dumps(record)))
    return records


@pytest.fixture(scope="module")
def live(
    local_stack: LocalStack, trained_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("live")
    bootstrap = local_stack.kafka.bootstrap
    topics = fresh_topics(bootstrap, partitions=3)
    topic = topics.topic
    consumer_port = free_port()
    command = ["predictor", "--model-uri", str(trained_artifact), "--name", MODEL_NAME]
    with (
        migrated_database(local_stack, "live") as database,
        serving(command, base_env(), folder / "predictor.log", "/v2/health/ready") as predictor,
        gateway(
            database,
            trained_artifact,
            folder / "gateway.log",
            # The matured cohort is the last hour (labels arrive at once here), recounted every 2 s.
            feedback_label_delay_s="0",
            feedback_cohort_s="3600",
            feedback_quality_interval_s="2",
        ) as served,
    ):
        env = base_env(
            DB_URL=database,
            MODEL_PATH=str(trained_artifact),
            **topics.environment(),
            BATCH_SIZE="200",
        )
        with open(folder / "consumer.log", "ab") as log:
            consumer = subprocess.Popen(
                consume_command(consumer_port, "--checkpoint-interval", "5"),
                env=env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        targets = {
            "fraudops-gateway": served.url,
            "fraudops-consumer": f"http://127.0.0.1:{consumer_port}",
            "fraudops-predictor": predictor.url,
        }
        prometheus = LocalPrometheus(
            {job: [url.removeprefix("http://")] for job, url in targets.items()}, rule_files=[RULES]
        ).start()
        try:
            wait_until(
                lambda: not prometheus.scrape_errors(),
                120,
                lambda: f"every target scraped (errors: {prometheus.scrape_errors()})",
                interval_s=1,
            )
            # Two rounds of traffic, the second after Prometheus has seen the series of the first: a
            # counter first scraped with all its increments already in it shows no increase, so its
            # rate() is 0 and a ratio of two of them has no value (a fast consumer decides a whole
            # round between two scrapes).
            rounds = [(1000, 300), (2000, 400)]
            for number, (transactions, requests) in enumerate(rounds):
                produce(bootstrap, topic, simulated(transactions, seed=3 + 2 * number))
                send_gateway_traffic(served.url, simulated(requests, seed=4 + 2 * number))
                score_on_the_predictor(predictor.url)
                expected = sum(t + r for t, r in rounds[: number + 1])
                wait_until(
                    lambda n=expected: stored(database) >= n,
                    180,
                    "the consumer storing every valid record",
                    interval_s=1,
                    alive=[consumer],
                )
                if number == 0:
                    wait_until(
                        lambda: len(prometheus.query(FRAUD_DECISIONS_BY_SOURCE)) == 2,
                        180,
                        "Prometheus seeing fraud decisions of the stream and the gateway",
                        interval_s=1,
                    )
            produce(bootstrap, topic, [(None, b"{not json"), ("c", b'{"amount": -1}')])  # for the DLQ
            # The consumer reports its lag when a checkpoint round starts (every --checkpoint-interval).
            wait_until(
                lambda: (
                    prometheus.query("fraudops_consumer_lag_records")
                    and prometheus.query("fraudops_consumer_dead_lettered_total > 0")
                ),
                120,
                "the consumer's lag and dead letters scraped",
                interval_s=1,
                alive=[consumer],
            )
            send_feedback(served.url, database, prometheus)
            yield Live(prometheus, targets, served.url, database, topic, bootstrap)
        finally:
            prometheus.stop()
            consumer.terminate()
            consumer.wait(timeout=60)


FRAUD_DECISIONS_BY_SOURCE = 'sum by (source) (fraudops_decisions_total{outcome="fraud",shadow="false"})'


def score_on_the_predictor(url: str) -> None:
    """A KServe V1 and a V2 (Open Inference Protocol) call with feature rows."""
    rows = [[0.0] * N_FEATURES] * 4
    v1 = httpx.post(f"{url}/v1/models/{MODEL_NAME}:predict", json={"instances": rows}, timeout=30)
    assert v1.status_code == 200, v1.text
    features = {
        "name": "features",
        "shape": [4, N_FEATURES],
        "datatype": "FP32",
        "data": [0.0] * (4 * N_FEATURES),
    }
    v2 = httpx.post(f"{url}/v2/models/{MODEL_NAME}/infer", json={"inputs": [features]}, timeout=30)
    assert v2.status_code == 200, v2.text


def stored(database: str) -> int:
    import psycopg

    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT count(*) FROM decisions WHERE NOT shadow").fetchone()
    return int(row[0]) if row else 0


def send_gateway_traffic(url: str, records: list[tuple[str, bytes]]) -> None:
    payloads = [orjson.loads(value) for _, value in records]
    for start in range(0, len(payloads), 100):
        response = httpx.post(
            f"{url}/predict/batch", json={"transactions": payloads[start : start + 100]}, timeout=60
        )
        assert response.status_code == 200, response.text
    assert httpx.post(f"{url}/predict", json={"amount": -3}, timeout=30).status_code == 422


def send_feedback(url: str, database: str, prometheus: LocalPrometheus) -> None:
    """Labels for flagged and for unflagged transactions, in two rounds a scrape apart."""
    import psycopg

    with psycopg.connect(database) as conn:
        flagged = [
            r[0]
            for r in conn.execute(
                "SELECT transaction_id FROM decisions WHERE is_fraud AND NOT shadow LIMIT 20"
            ).fetchall()
        ]
        unflagged = [
            r[0]
            for r in conn.execute(
                "SELECT transaction_id FROM decisions WHERE NOT is_fraud AND NOT shadow LIMIT 10"
            ).fetchall()
        ]
    assert len(flagged) >= 4 and len(unflagged) >= 4
    rounds = [flagged[: len(flagged) // 2] + unflagged[:2], flagged[len(flagged) // 2 :] + unflagged[2:]]
    for number, round_ids in enumerate(rounds):
        for index, transaction_id in enumerate(round_ids):
            is_fraud = index % 3 != 0  # mostly confirmed, some dismissed
            response = httpx.post(
                f"{url}/feedback", json={"transaction_id": transaction_id, "is_fraud": is_fraud}, timeout=30
            )
            assert response.status_code in (200, 201), response.text
        if number == 0:  # the second round must increase counters Prometheus has already seen
            wait_until(
                lambda: prometheus.query("fraudops_feedback_total"),
                180,
                "the first labels scraped",
                interval_s=1,
            )


def names_in(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (identifiers followed by `{` or `[`, or standing alone
    as an argument), leaving out functions, keywords and label names."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "{}", without_strings)
    candidates = set(re.findall(r"\b([a-z_][a-z0-9_:]*)\b(?=\s*[\[{)])", without_labels))
    return {name for name in candidates if name.startswith("fraudops_") or name in ("up",)}


def exported_names(targets: dict[str, str]) -> set[str]:
    names = {"up"}
    for url in targets.values():
        for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
            names.update(sample.name for sample in family.samples)
    return names


def filled(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def panel_queries(built: dashboard.Dashboard) -> list[tuple[str, str]]:
    """(panel title, query with Grafana's variables filled in) for every query of every panel."""
    document = orjson.loads(to_json(built))
    return [
        (panel["title"], filled(target["expr"]))
        for panel in panels_of(document)
        for target in panel["targets"]
    ]


def unexported(queries: list[tuple[str, str]], exported: set[str]) -> list[str]:
    """ "panel: metric" for every metric name a query uses that is not among the `exported` ones."""
    return [f"{title}: {name}" for title, expr in queries for name in names_in(expr) if name not in exported]


def unanswered(prometheus: LocalPrometheus, queries: list[tuple[str, str]], timeout_s: float) -> list[str]:
    """The queries still without a sample after polling all of them together until `timeout_s` (one
    deadline for the dashboard: a panel without data costs the test once, not once per panel)."""

    def answered(query: str) -> bool:
        return any(not math.isnan(float(s["value"][1])) for s in prometheus.query(query))

    waiting = list(queries)

    def all_answered() -> bool:
        waiting[:] = [(title, expr) for title, expr in waiting if not answered(expr)]
        return not waiting

    with contextlib.suppress(WaitTimedOut):  # the caller reports the queries still waiting
        wait_until(all_answered, timeout_s, "every query's data", interval_s=2)
    return [f"{title}: {expr}" for title, expr in waiting]


@pytest.mark.parametrize("build", [platform_overview, model], ids=["overview", "model"])
def test_every_panel_query_returns_data_and_uses_only_exported_metrics(live: Live, build: Any) -> None:
    queries = panel_queries(build())
    unknown = unexported(queries, exported_names(live.targets))
    missing_data = unanswered(live.prometheus, queries, timeout_s=120)
    assert (unknown, missing_data) == ([], []), "metric names no service exports, queries without data"


def amount_psi(live: Live) -> float:
    series = live.prometheus.query('max(fraudops_feature_psi{source="stream",feature="amount"})')
    return float(series[0]["value"][1]) if series else math.nan


def amount_drift_alerts(live: Live, state: str | None = None) -> list[dict[str, Any]]:
    """FraudopsFeatureDrift alerts for amount in Prometheus now (pending or firing, or only `state`)."""
    return [
        a
        for a in live.prometheus.alerts()
        if a["labels"]["alertname"] == "FraudopsFeatureDrift"
        and a["labels"].get("feature") == "amount"
        and (state is None or a["state"] == state)
    ]


def test_tripled_amounts_make_the_feature_drift_alert_fire(live: Live) -> None:
    before = amount_psi(live)
    assert before < 0.25, f"amount already drifted before the injection: PSI {before}"
    # Not before: the rule has been evaluated over the normal traffic without a word about amount.
    [rule] = [r for r in live.prometheus.rules() if r.get("name") == "FraudopsFeatureDrift"]
    assert rule["health"] == "ok" and not rule["lastEvaluation"].startswith("0001"), rule
    assert amount_drift_alerts(live) == [], "the drift alert for amount was raised before any drift"
    produce(live.bootstrap, live.topic, simulated(4000, seed=9, amount_scale=3.0))

    # The rule waits 5 minutes (`for: 5m`) before firing: the drift must last, not blip.
    (alert, *_) = wait_until(
        lambda: amount_drift_alerts(live, "firing"),
        600,
        lambda: (
            f"FraudopsFeatureDrift firing for amount (the stream's amount PSI in Prometheus now "
            f"{amount_psi(live):.4f}, {before:.4f} before the injection; amount alerts: {amount_drift_alerts(live)})"
        ),
        interval_s=5,
    )
    assert float(alert["value"]) > 0.25
    assert amount_psi(live) > 0.25
