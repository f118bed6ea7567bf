"""One trace per transaction, end to end, in a real trace store (Jaeger built from Go modules).

The real simulator publishes to the real Kafka broker, the real stream consumer decides with a real
KServe predictor as its remote variant and stores into real PostgreSQL, all three exporting OTLP to
Jaeger at 100% sampling. For one transaction that raised an alert, Jaeger's query API must return a
single trace that holds the producer span, the consumer's process span with its features, scoring
(and, below it, the predictor's spans), PostgreSQL write and alert spans, with the conventional
messaging and database attributes. The span tree is written to .run/test-artifacts/trace-tree.txt.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from fraudops_gateway.schemas import FULL_EXAMPLE
from fraudops_infra.processes import fraudops_command
from fraudops_infra.stack import LocalStack
from tests.conftest import REPO_ROOT
from tests.integration.jaeger import Jaeger, running_jaeger
from tests.integration.streaming import consume_command, fresh_topics
from tests.integration.test_gateway_support import (
    MODEL_NAME,
    base_env,
    gateway,
    migrated_database,
    serving,
    variant,
    write_routing_table,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]  # the first test pays for training
ARTIFACTS = REPO_ROOT / ".run" / "test-artifacts"


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    with running_jaeger(tmp_path_factory.mktemp("jaeger")) as server:
        yield server


@pytest.fixture(scope="module")
def traced_run(
    jaeger: Jaeger, local_stack: LocalStack, trained_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Simulator → Kafka → consumer (remote predictor) → PostgreSQL → alerts, every process traced."""
    folder = tmp_path_factory.mktemp("traced")
    topics = fresh_topics(local_stack.kafka.bootstrap, partitions=3)
    kafka = topics.environment()
    predictor_env = base_env(**jaeger.environment("fraudops-predictor"))
    command = ["predictor", "--model-uri", str(trained_artifact), "--name", MODEL_NAME]
    with (
        migrated_database(local_stack, "traced") as database,
        serving(command, predictor_env, folder / "predictor.log", "/v2/health/ready") as predictor,
    ):
        routing = folder / "routing.yaml"
        write_routing_table(routing, [variant("stable", endpoint=predictor.url)])
        simulate = subprocess.run(
            fraudops_command(
                "simulate",
                "--kafka",
                "--transactions",
                "400",
                "--customers",
                "40",
                "--fraud-rate",
                "0.1",
                "--seed",
                "5",
            ),
            env=base_env(**kafka, **jaeger.environment("fraudops-simulator")),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert simulate.returncode == 0, simulate.stdout[-2000:] + simulate.stderr[-2000:]
        consumer_env = base_env(
            **kafka,
            DB_URL=database,
            ROUTING_TABLE_PATH=str(routing),
            MODEL_PATH=str(trained_artifact),
            # One record per batch: a batch is scored by one KServe call, which sits under the `score` span
            # of the batch's first sampled record only (fraudops_stream.tracing); with batches of one,
            # whichever transaction alerts first has the predictor's spans in its own trace.
            BATCH_SIZE="1",
            **jaeger.environment("fraudops-stream"),
        )
        with open(folder / "consumer.log", "ab") as log:
            consumer = subprocess.run(
                consume_command(0, "--idle-exit", "10"),
                env=consumer_env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=600,
                check=False,
            )
        assert consumer.returncode == 0, (folder / "consumer.log").read_text()[-3000:]
        with psycopg.connect(database) as conn:
            stored = conn.execute("SELECT count(*) FROM transactions").fetchone()
            alerted = conn.execute("SELECT transaction_id FROM alerts ORDER BY created_at LIMIT 1").fetchone()
        assert stored is not None and stored[0] == 400
        assert alerted is not None, "no transaction raised an alert"
        yield {
            "transaction_id": alerted[0],
            "topic": topics.topic,
            "alerts_topic": topics.alerts,
            "group": topics.group,
        }


def tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span["tags"]}


def span_tree(trace: dict[str, Any]) -> str:
    """The trace as an indented tree: operation, service, kind and duration."""
    spans = {span["spanID"]: span for span in trace["spans"]}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in trace["spans"]:
        parents = [
            r["spanID"] for r in span["references"] if r["refType"] == "CHILD_OF" and r["spanID"] in spans
        ]
        children.setdefault(parents[0] if parents else None, []).append(span)
    lines: list[str] = []

    def walk(span: dict[str, Any], depth: int) -> None:
        service = trace["processes"][span["processID"]]["serviceName"]
        lines.append(
            f"{'    ' * depth}{span['operationName']}  [{service}, {tags(span).get('span.kind', '')}, "
            f"{span['duration'] / 1000:.2f} ms]"
        )
        for child in sorted(children.get(span["spanID"], []), key=lambda s: s["startTime"]):
            walk(child, depth + 1)

    for root in sorted(children.get(None, []), key=lambda s: s["startTime"]):
        walk(root, 0)
    return "\n".join(lines)


def test_one_transaction_is_one_trace_from_producer_to_alert(
    jaeger: Jaeger, traced_run: dict[str, Any]
) -> None:
    transaction_id, topic = traced_run["transaction_id"], traced_run["topic"]
    alert_span = f"send {traced_run['alerts_topic']}"

    wanted = {
        f"send {topic}",
        f"process {topic}",
        "features",
        "score",
        f"score {MODEL_NAME}",
        "COPY decisions",
        alert_span,
    }
    seen: dict[str, Any] = {"traces": 0, "names": set()}  # the last look, for the failure message

    def complete_trace() -> dict[str, Any] | None:
        found = jaeger.traces("fraudops-simulator", {"fraudops.transaction_id": transaction_id})
        seen["traces"] = len(found)
        if len(found) != 1:
            return None
        trace = jaeger.trace(found[0]["traceID"])
        seen["names"] = {span["operationName"] for span in trace["spans"]} if trace else set()
        return trace if wanted <= seen["names"] else None

    def what() -> str:
        return (
            f"the complete trace of transaction {transaction_id} ({seen['traces']} trace(s) found; "
            f"spans missing: {sorted(wanted - seen['names'])}; present: {sorted(seen['names'])})"
        )

    trace = jaeger.wait_for(complete_trace, what, timeout_s=90)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "trace-tree.txt").write_text(f"transaction {transaction_id}\n{span_tree(trace)}\n")

    by_name = {span["operationName"]: span for span in trace["spans"]}
    service_of = {
        span["spanID"]: trace["processes"][span["processID"]]["serviceName"] for span in trace["spans"]
    }
    services = {name: service_of[span["spanID"]] for name, span in by_name.items()}
    producer, process = by_name[f"send {topic}"], by_name[f"process {topic}"]
    assert services[f"send {topic}"] == "fraudops-simulator"
    assert services[f"process {topic}"] == "fraudops-stream"
    assert services[f"score {MODEL_NAME}"] == "fraudops-predictor"
    assert process["references"][0]["spanID"] == producer["spanID"]
    for child in ("features", "score", "COPY decisions", alert_span):
        assert by_name[child]["references"][0]["spanID"] == process["spanID"], child
    assert tags(producer)["span.kind"] == "producer" and tags(process)["span.kind"] == "consumer"
    assert tags(by_name[alert_span])["span.kind"] == "producer"

    consumed = tags(process)
    assert consumed["messaging.system"] == "kafka"
    assert consumed["messaging.destination.name"] == topic
    assert consumed["messaging.consumer.group.name"] == traced_run["group"]
    assert consumed["messaging.kafka.message.key"] == tags(producer)["messaging.kafka.message.key"]
    assert consumed["fraudops.transaction_id"] == transaction_id
    stored = tags(by_name["COPY decisions"])
    assert stored["db.system.name"] == "postgresql" and stored["db.collection.name"] == "decisions"
    assert tags(by_name[alert_span])["messaging.destination.name"] == traced_run["alerts_topic"]
    # The consumer's HTTP call to KServe carried the context: the predictor's spans sit below `score`.
    scoring = by_name["score"]["spanID"]
    predictor_spans = [s for s in trace["spans"] if service_of[s["spanID"]] == "fraudops-predictor"]
    assert any(s["references"][0]["spanID"] == scoring for s in predictor_spans)


def test_the_gateways_predict_trace_covers_state_lookup_scoring_and_the_deferred_write(
    jaeger: Jaeger, local_stack: LocalStack, trained_artifact: Path, tmp_path: Path
) -> None:
    trace_id, caller = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    otel = {key.lower(): value for key, value in jaeger.environment("fraudops-gateway").items()}
    transaction = {
        **FULL_EXAMPLE,
        "transaction_id": f"traced-{uuid.uuid4().hex[:12]}",
        "customer_id": "cust-traced",
    }
    with (
        migrated_database(local_stack, "traced_gateway") as database,
        gateway(database, trained_artifact, tmp_path / "gateway.log", **otel) as served,
    ):
        response = httpx.post(
            served.url + "/predict",
            json=transaction,
            timeout=30,
            headers={"traceparent": f"00-{trace_id}-{caller}-01"},
        )
        assert response.status_code == 200, response.text

        def complete() -> dict[str, Any] | None:
            trace = jaeger.trace(trace_id)
            names = {span["operationName"] for span in trace["spans"]} if trace else set()
            return (
                trace
                if {"POST /predict", "state lookup", "features", "score", "COPY decisions"} <= names
                else None
            )

        trace = jaeger.wait_for(complete, "the gateway's /predict trace")
    (ARTIFACTS / "gateway-trace-tree.txt").write_text(span_tree(trace) + "\n")
    by_name = {span["operationName"]: span for span in trace["spans"]}
    server = by_name["POST /predict"]
    assert server["references"][0]["spanID"] == caller
    assert tags(server)["span.kind"] == "server" and tags(server)["http.response.status_code"] == 200
    for child in ("state lookup", "features", "score", "COPY decisions"):
        assert by_name[child]["references"][0]["spanID"] == server["spanID"], child
    assert tags(by_name["COPY decisions"])["db.system.name"] == "postgresql"
