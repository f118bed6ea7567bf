"""The tracing setup against a real trace store: spans of two processes that pass the W3C context through
Kafka record headers land in Jaeger as one trace, with the messaging attributes; sampling obeys
OTEL_TRACES_SAMPLER; the real predictor scores inside its caller's trace."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fraudops.artifact import load_artifact
from tests.integration.jaeger import Jaeger, running_jaeger
from tests.integration.test_gateway_support import MODEL_NAME, base_env, serving

pytestmark = pytest.mark.integration

PRODUCE = """
import sys
from opentelemetry import trace
from fraudops import tracing
assert tracing.configure_tracing("probe-producer")
with trace.get_tracer("probe").start_as_current_span(
        "send transactions", kind=trace.SpanKind.PRODUCER,
        attributes=tracing.kafka_attributes("send", "transactions", key=sys.argv[1])):
    headers = tracing.kafka_headers()
tracing.flush_traces()
print(dict(headers).get("traceparent", b"").decode())
"""
PROCESS = """
import sys
from opentelemetry import trace
from fraudops import tracing
assert tracing.configure_tracing("probe-consumer")
context = tracing.context_from_kafka_headers([("traceparent", sys.argv[2].encode())])
with trace.get_tracer("probe").start_as_current_span(
        "process transactions", context=context, kind=trace.SpanKind.CONSUMER,
        attributes=tracing.kafka_attributes("process", "transactions", key=sys.argv[1],
                                            consumer_group="fraud-scorer")):
    pass
tracing.flush_traces()
"""


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    with running_jaeger(tmp_path_factory.mktemp("jaeger")) as server:
        yield server


def run(script: str, env: dict[str, str], *args: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_context_carried_in_kafka_headers_joins_two_processes_in_one_trace(jaeger: Jaeger) -> None:
    key = f"cust-{uuid.uuid4().hex[:8]}"
    traceparent = run(PRODUCE, jaeger.environment("probe-producer"), key)
    run(PROCESS, jaeger.environment("probe-consumer"), key, traceparent)
    trace_id = traceparent.split("-")[1]

    trace = jaeger.wait_for(
        lambda: (t := jaeger.trace(trace_id)) and len(t["spans"]) == 2 and t,
        "the producer and consumer spans",
    )
    spans = {span["operationName"]: span for span in trace["spans"]}
    services = {trace["processes"][span["processID"]]["serviceName"] for span in trace["spans"]}
    assert services == {"probe-producer", "probe-consumer"}
    consumer = spans["process transactions"]
    assert consumer["references"][0]["spanID"] == spans["send transactions"]["spanID"]
    tags = {tag["key"]: tag["value"] for tag in consumer["tags"]}
    assert tags["messaging.system"] == "kafka"
    assert tags["messaging.kafka.message.key"] == key
    assert tags["messaging.consumer.group.name"] == "fraud-scorer"
    assert tags["span.kind"] == "consumer"


def test_a_zero_sampling_ratio_exports_nothing_and_marks_the_context_unsampled(jaeger: Jaeger) -> None:
    key = f"cust-{uuid.uuid4().hex[:8]}"
    traceparent = run(PRODUCE, jaeger.environment("probe-unsampled", "parentbased_traceidratio", "0"), key)
    assert int(traceparent[-2:], 16) & 1 == 0  # the sampled flag is off (0x02, "random", may be set)
    # A sampled probe sent afterwards through the same store proves the unsampled one would have arrived.
    sampled = run(PRODUCE, jaeger.environment("probe-unsampled"), key)
    jaeger.wait_for(lambda: jaeger.trace(sampled.split("-")[1]), "the sampled probe")
    assert jaeger.trace(traceparent.split("-")[1]) is None


def test_the_predictor_scores_inside_the_callers_trace(
    jaeger: Jaeger, trained_artifact: Path, tmp_path: Path
) -> None:
    trace_id, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    env = base_env(**jaeger.environment("fraudops-predictor"))
    command = ["predictor", "--model-uri", str(trained_artifact), "--name", MODEL_NAME]
    with serving(command, env, tmp_path / "predictor.log", "/v2/health/ready") as served:
        width = len(load_artifact(str(trained_artifact)).metadata.feature_names)
        response = httpx.post(
            f"{served.url}/v1/models/{MODEL_NAME}:predict",
            json={"instances": [[0.0] * width] * 3},
            headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
            timeout=30,
        )
        assert response.status_code == 200, response.text

    trace = jaeger.wait_for(
        lambda: (t := jaeger.trace(trace_id)) and len(t["spans"]) >= 2 and t, "the predictor's spans"
    )
    by_name = {span["operationName"]: span for span in trace["spans"]}
    server = by_name["POST /v1/models/{model_name}:predict"]  # KServe's own FastAPI instrumentation
    score = by_name[f"score {MODEL_NAME}"]
    assert server["references"][0]["spanID"] == caller_span
    assert ancestors(trace, score)[-1] == server["spanID"]
    tags = {tag["key"]: tag["value"] for tag in score["tags"]}
    assert tags["fraudops.rows"] == 3
    assert tags["fraudops.model.version"] == load_artifact(str(trained_artifact)).metadata.version
    assert trace["processes"][score["processID"]]["serviceName"] == "fraudops-predictor"


def ancestors(trace: dict, span: dict) -> list[str]:
    """Span ids from `span`'s parent up to the root of the trace (within the trace)."""
    by_id = {s["spanID"]: s for s in trace["spans"]}
    chain, current = [], span
    while current["references"] and current["references"][0]["spanID"] in by_id:
        parent = current["references"][0]["spanID"]
        chain.append(parent)
        current = by_id[parent]
    return chain
