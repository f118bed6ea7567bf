"""Tracing setup: off unless an OTLP endpoint is set, W3C context in Kafka headers, conventional attributes."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

from fraudops import tracing


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, False),
        ({"OTEL_TRACES_SAMPLER": "always_on"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
    ],
)
def test_tracing_is_wanted_only_when_an_otlp_endpoint_is_configured(
    environ: dict[str, str], wanted: bool
) -> None:
    assert tracing.tracing_wanted(environ) is wanted


def test_configure_tracing_without_an_endpoint_leaves_tracing_off() -> None:
    assert tracing.configure_tracing("test", environ={}) is False
    assert tracing.tracing_enabled() is False


def test_grpc_protocol_is_refused_with_the_supported_one_named() -> None:
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    with pytest.raises(ValueError, match="http/protobuf"):
        tracing.configure_tracing("test", environ=environ)


def test_a_span_context_travels_through_kafka_headers() -> None:
    tracer = TracerProvider().get_tracer("test")  # a recording tracer, without touching the global provider
    with tracer.start_as_current_span("send transactions") as span:
        headers = tracing.kafka_headers()
    assert [name for name, _ in headers] == ["traceparent"]
    received = tracing.context_from_kafka_headers([("other", b"x"), *headers])
    assert received is not None
    remote = trace.get_current_span(received).get_span_context()
    assert remote.trace_id == span.get_span_context().trace_id
    assert remote.span_id == span.get_span_context().span_id
    assert remote.is_remote


def test_records_without_trace_context_carry_none() -> None:
    assert tracing.context_from_kafka_headers(None) is None
    assert tracing.context_from_kafka_headers([("other", b"x")]) is None


def test_only_sampled_traceparents_are_picked() -> None:
    sampled = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    unsampled = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    assert tracing.sampled_traceparent([("traceparent", sampled)]) == sampled
    assert tracing.sampled_traceparent([("traceparent", unsampled)]) is None
    assert tracing.sampled_traceparent([("traceparent", b"garbage")]) is None
    assert tracing.sampled_traceparent(None) is None


def test_kafka_attributes_follow_the_messaging_conventions() -> None:
    attributes = tracing.kafka_attributes(
        "process", "transactions", key="C1", partition=3, offset=42, consumer_group="fraud-scorer"
    )
    assert attributes == {
        "messaging.system": "kafka",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": "transactions",
        "messaging.kafka.message.key": "C1",
        "messaging.destination.partition.id": "3",
        "messaging.kafka.offset": 42,
        "messaging.consumer.group.name": "fraud-scorer",
    }


def test_postgres_attributes_follow_the_database_conventions() -> None:
    attributes = tracing.postgres_attributes("COPY", "decisions", database="fraudops", batch_size=100)
    assert attributes["db.system.name"] == "postgresql"
    assert attributes["db.operation.name"] == "COPY"
    assert attributes["db.collection.name"] == "decisions"
    assert attributes["db.namespace"] == "fraudops"
    assert attributes["db.operation.batch.size"] == 100


def test_a_sampled_record_gets_a_producer_span_with_its_context_in_the_headers() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = tracing.KafkaSendSpans("transactions", "test", provider)

    span, headers = spans.begin("C1", "tx-1")
    span.end()

    (finished,) = exporter.get_finished_spans()
    assert finished.name == "send transactions"
    assert finished.kind == trace.SpanKind.PRODUCER
    assert finished.attributes is not None
    assert finished.attributes["messaging.kafka.message.key"] == "C1"
    assert finished.attributes["fraudops.transaction_id"] == "tx-1"
    context = tracing.context_from_kafka_headers(headers)
    assert trace.get_current_span(context).get_span_context().span_id == finished.context.span_id


def test_a_sampled_out_record_gets_no_header_and_no_exported_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span, headers = tracing.KafkaSendSpans("transactions", "test", provider).begin("C1", "tx-1")
    span.end()
    assert headers is None
    assert exporter.get_finished_spans() == ()


def test_a_request_whose_trace_headers_are_not_utf8_gets_a_span_not_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fraudops_gateway.tracing import request_span

    monkeypatch.setattr(tracing, "tracing_enabled", lambda: True)
    scope = {
        "method": "POST",
        "path": "/predict",
        "headers": [(b"traceparent", b"\xff" * 55), (b"tracestate", b"\xfe\xfe")],
    }
    span = request_span(scope)  # raised UnicodeDecodeError before: the request was answered 500
    assert span is not None
    span.end()


@pytest.mark.parametrize("sampled", [False, True])
def test_a_block_under_an_unsampled_span_makes_no_span_and_one_under_a_sampled_span_does(
    monkeypatch: pytest.MonkeyPatch, sampled: bool
) -> None:
    # The sampler is ALWAYS_ON on purpose: it would record any span it is asked about, so a span under
    # the unsampled parent can only be missing because none was made.
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_enabled", True)
    monkeypatch.setattr(trace, "get_tracer", lambda name, *args, **kwargs: provider.get_tracer(name))
    cached = getattr(tracing, "tracer", None)
    if cached is not None:  # a cached tracer of another provider would not see the stand-in
        cached.cache_clear()
    flags = trace.TraceFlags(trace.TraceFlags.SAMPLED if sampled else trace.TraceFlags.DEFAULT)
    parent = trace.SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=True, trace_flags=flags)
    try:
        with trace.use_span(trace.NonRecordingSpan(parent)), tracing.traced("features", "test"):
            pass
    finally:
        if cached is not None:
            cached.cache_clear()
    finished = exporter.get_finished_spans()
    if sampled:
        (span,) = finished
        assert span.name == "features"
        assert span.context is not None and span.context.trace_id == 0xABC
    else:
        assert finished == ()
