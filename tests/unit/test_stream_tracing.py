"""The consumer's batch spans: each sampled record keeps its own trace; one scoring call, reachable from all."""

from __future__ import annotations

import pytest
from confluent_kafka import Message
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from fraudops import tracing
from fraudops_stream.tracing import BatchTrace, _Record


def traced_batch(count: int) -> tuple[InMemorySpanExporter, TracerProvider, list[Message], list[_Record]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sends = tracing.KafkaSendSpans("transactions", "test", provider)
    messages, records = [], []
    for offset in range(count):
        span, headers = sends.begin(f"C{offset}", f"tx-{offset}")
        span.end()
        message = Message(
            topic="transactions", partition=0, offset=offset, key=f"C{offset}".encode(), headers=headers
        )
        context = tracing.context_from_kafka_headers(headers)
        assert context is not None
        messages.append(message)
        records.append(_Record(message, context))
    return exporter, provider, messages, records


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def test_each_record_keeps_its_trace_and_every_score_span_leads_to_the_one_scoring_call() -> None:
    exporter, provider, messages, records = traced_batch(3)
    batch = BatchTrace(records, "transactions", "group", batch_size=3, provider=provider)
    batch.name_transactions(messages, ["tx-0", "tx-1", "tx-2"])
    with batch.scoring():
        # What the HTTP client instrumentation does inside the block: a span in the current context.
        provider.get_tracer("http").start_span("POST /v2/models/card-fraud/infer").end()
    batch.end()

    spans = exporter.get_finished_spans()
    sends = named(spans, "send transactions")
    call = named(spans, "POST /v2/models/card-fraud/infer")[0]
    scores = sorted(named(spans, "score"), key=lambda span: span.context.trace_id)
    by_trace = {span.context.trace_id: span for span in scores}
    assert len(sends) == 3 and len(scores) == 3
    assert {span.context.trace_id for span in sends} == set(by_trace)  # one score span in each record's trace

    first = next(
        span for span in scores if call.parent is not None and span.context.span_id == call.parent.span_id
    )
    assert call.context.trace_id == first.context.trace_id
    others = [span for span in scores if span is not first]
    assert all([link.context.span_id for link in span.links] == [first.context.span_id] for span in others)
    assert first.links == ()

    processes = [span for span in named(spans, "process transactions") if span.parent is not None]
    batch_span = next(span for span in named(spans, "process transactions") if span.parent is None)
    assert {span.parent.span_id for span in processes if span.parent} == {s.context.span_id for s in sends}
    assert all(span.links[0].context.span_id == batch_span.context.span_id for span in processes)
    assert len(batch_span.links) == 3
    assert batch_span.kind == trace.SpanKind.CONSUMER


MALFORMED_HEADERS = [
    [("traceparent", b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-zz")],  # 55 bytes, flags not hex
    [
        ("traceparent", b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01"),
        ("tracestate", b"\xff\xfe"),
    ],  # not UTF-8
    [("traceparent", b"\xff" * 55)],
    [("traceparent", b"00-zzzz")],
]


def test_a_record_whose_trace_headers_are_malformed_is_processed_untraced_or_fresh_never_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tracing, "tracing_enabled", lambda: True)
    messages = [
        Message(topic="transactions", partition=0, offset=offset, key=b"C1", headers=headers)
        for offset, headers in enumerate(MALFORMED_HEADERS)
    ]
    for message in messages:
        tracing.context_from_kafka_headers(message.headers())  # raised ValueError / UnicodeDecodeError before
    assert [tracing.sampled_traceparent(m.headers()) is not None for m in messages] == [
        False,
        True,
        False,
        False,
    ]
    batch = BatchTrace.start(messages, "transactions", "group")
    assert batch is not None  # the one well-formed sampled traceparent is traced, the rest are not
    batch.end()
