"""The consumer's spans: one trace per transaction, for the records whose producer sampled them.

A batch is processed as a whole, so each stage is timed once and every sampled record's spans share
those times. The record's own trace continues from its producer span (its headers):

    send transactions                       PRODUCER (the simulator or any producer, in the headers)
    └── process transactions                CONSUMER: key, partition, offset, group; linked to the batch span
        ├── features                        INTERNAL: the online feature update
        ├── score                           INTERNAL: routing and scoring (a KServe call is its child in the
        │                                   batch's first sampled record; the others link to that span)
        ├── COPY decisions                  CLIENT: db.system.name=postgresql, the batch write
        └── send fraud-alerts               PRODUCER: when the record raised an alert (context in its headers)

The batch gets a `process transactions` span of its own with a link to every sampled record's
producer span, as the messaging conventions ask for batch processing. With tracing off, or no sampled
record in the batch, `BatchTrace.start` returns None after one header scan per record.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

from fraudops import tracing

TRACER = "fraudops_stream"


@dataclass
class _Record:
    message: Message
    parent: otel_context.Context
    span: trace.Span | None = None
    transaction_id: str | None = None
    children: list[trace.Span] = field(default_factory=list)


class BatchTrace:
    """The spans of one batch's sampled records (see the module docstring)."""

    def __init__(
        self,
        records: list[_Record],
        topic: str,
        group: str,
        batch_size: int,
        provider: trace.TracerProvider | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(TRACER, tracer_provider=provider)
        self.topic, self.group = topic, group
        self._records = records
        self._by_offset = {(r.message.partition(), r.message.offset()): r for r in records}
        self._by_transaction: dict[str, _Record] = {}
        started = time.time_ns()
        # Stage times come from time.perf_counter(); spans want wall-clock nanoseconds.
        self._wall_offset_ns = started - time.perf_counter_ns()
        self._batch = self._tracer.start_span(
            tracing.span_name("process", topic),
            kind=SpanKind.CONSUMER,
            start_time=started,
            attributes=tracing.kafka_attributes(
                "process", topic, consumer_group=group, batch_size=batch_size
            ),
            links=[Link(trace.get_current_span(r.parent).get_span_context()) for r in records],
        )
        batch_link = [Link(self._batch.get_span_context())]
        for record in records:
            message = record.message
            key = message.key()
            record.span = self._tracer.start_span(
                tracing.span_name("process", topic),
                context=record.parent,
                kind=SpanKind.CONSUMER,
                start_time=started,
                links=batch_link,
                attributes=tracing.kafka_attributes(
                    "process",
                    topic,
                    key=key.decode(errors="replace") if isinstance(key, bytes) else key,
                    partition=message.partition(),
                    offset=message.offset(),
                    consumer_group=group,
                ),
            )

    @classmethod
    def start(cls, messages: Sequence[Message], topic: str, group: str) -> BatchTrace | None:
        if not tracing.tracing_enabled():
            return None
        records = [
            _Record(m, context)
            for m in messages
            if tracing.sampled_traceparent(m.headers())
            and (context := tracing.context_from_kafka_headers(m.headers())) is not None
        ]
        return cls(records, topic, group, len(messages)) if records else None

    def name_transactions(self, messages: Sequence[Message], transaction_ids: Sequence[str]) -> None:
        """Which transaction each message scored and stored carries (spans get `fraudops.transaction_id`)."""
        for message, transaction_id in zip(messages, transaction_ids, strict=True):
            record = self._by_offset.get((message.partition(), message.offset()))
            if record is not None and record.span is not None:
                record.transaction_id = transaction_id
                self._by_transaction[transaction_id] = record
                record.span.set_attribute(tracing.TRANSACTION_ID, transaction_id)

    def stage(
        self,
        name: str,
        started: float,
        ended: float,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        """A finished child span of every decoded record, from two `time.perf_counter()` readings."""
        start_ns, end_ns = (int(t * 1e9) + self._wall_offset_ns for t in (started, ended))
        for record in self._decoded():
            child = self._tracer.start_span(
                name,
                context=trace.set_span_in_context(record.span),
                kind=kind,
                start_time=start_ns,
                attributes=attributes,
            )
            child.end(end_time=end_ns)

    @contextmanager
    def scoring(self) -> Iterator[None]:
        """A `score` span per record around the block; the first is current, so an HTTP call to a predictor
        made inside carries its context (one call scores the whole batch). The call's spans can sit in one
        trace only: every other record's `score` span links to that first one, the way to the call."""
        decoded = self._decoded()
        spans = [
            self._tracer.start_span("score", context=trace.set_span_in_context(record.span))
            for record in decoded[:1]
        ]
        to_the_call = [Link(spans[0].get_span_context())] if spans else []
        spans += [
            self._tracer.start_span(
                "score", context=trace.set_span_in_context(record.span), links=to_the_call
            )
            for record in decoded[1:]
        ]
        token = otel_context.attach(trace.set_span_in_context(spans[0])) if spans else None
        try:
            yield
        finally:
            if token is not None:
                otel_context.detach(token)
            ended = time.time_ns()
            for span in spans:
                span.end(end_time=ended)

    def alert_headers(self, transaction_id: str, topic: str) -> list[tuple[str, bytes]] | None:
        """A producer span for the alert of a sampled transaction, and the headers carrying it."""
        record = self._by_transaction.get(transaction_id)
        if record is None:
            return None
        span = self._tracer.start_span(
            tracing.span_name("send", topic),
            context=trace.set_span_in_context(record.span),
            kind=SpanKind.PRODUCER,
            attributes={
                **tracing.kafka_attributes("send", topic, key=transaction_id),
                tracing.TRANSACTION_ID: transaction_id,
            },
        )
        span.end()
        return tracing.kafka_headers(trace.set_span_in_context(span))

    def end(self) -> None:
        ended = time.time_ns()
        for record in self._records:
            if record.span is not None:
                record.span.end(end_time=ended)
        self._batch.end(end_time=ended)

    def _decoded(self) -> list[_Record]:
        return list(self._by_transaction.values())
