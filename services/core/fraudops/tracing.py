"""OpenTelemetry tracing for every fraudops process, configured by the standard `OTEL_*` variables.

Tracing is off unless an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn
it off again. When it is on, the SDK reads the rest itself, so the usual knobs work unchanged:
sampling (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`; default `parentbased_always_on`, e.g.
`parentbased_traceidratio` with `0.01` for 1%), the exporter (`OTEL_EXPORTER_OTLP_*`, OTLP over HTTP
with protobuf), batching (`OTEL_BSP_*`) and the resource (`OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`).

When it is off, the API's no-op tracer answers every call; paths that run per record also ask
`tracing_enabled()` once per batch so that they skip even building attributes.

W3C trace context travels in Kafka record headers (`traceparent`, `tracestate`), set and read here.
Span attributes follow the OpenTelemetry messaging and database semantic conventions; the helpers
below build them so that every service names them the same way.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.semconv._incubating.attributes import messaging_attributes as messaging
from opentelemetry.semconv.attributes import db_attributes as db
from opentelemetry.semconv.attributes import server_attributes as server

KafkaHeaders = Sequence[tuple[str, bytes | str | None]]

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
_PROPAGATED = frozenset({"traceparent", "tracestate"})
_enabled = False


def tracing_wanted(environ: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces to be exported (pure: the rules in the module docstring)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in _ENDPOINT_VARIABLES)


def configure_tracing(service_name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Install the OTLP exporting tracer provider if the environment asks for it; True when tracing is on.

    Call once at process start. `service_name` is the default for `service.name`
    (`OTEL_SERVICE_NAME` wins). The provider flushes its spans at interpreter exit.
    """
    global _enabled
    environ = os.environ if environ is None else environ
    if _enabled or not tracing_wanted(environ):
        return _enabled
    protocol = next((environ[name] for name in _PROTOCOL_VARIABLES if environ.get(name)), "http/protobuf")
    if protocol.strip().lower() != "http/protobuf":
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported: fraudops exports "
            "traces over OTLP/HTTP only, set it to 'http/protobuf' (the default)"
        )
    # Imported here: a process with tracing off never loads the SDK's exporter and protobuf code.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Attributes given to Resource.create() win over the environment's, so ours is given only when the
    # environment names no service.
    named = environ.get("OTEL_SERVICE_NAME") or "service.name=" in environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    resource = Resource.create({} if named else {SERVICE_NAME: service_name})
    provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER(_ARG)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _enabled = True
    return True


def tracing_enabled() -> bool:
    """True once `configure_tracing` installed an exporting provider in this process."""
    return _enabled


def flush_traces(timeout_ms: int = 5000) -> None:
    """Export the spans still buffered (before a short-lived command exits or a test reads the store)."""
    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        force_flush(timeout_ms)


def traced(
    name: str,
    tracer_name: str,
    *,
    headers: Mapping[str, str] | None = None,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
) -> AbstractContextManager[Any]:
    """A span around a block; nothing when tracing is off.

    Its parent is the current span when there is one (a framework's server span, say), else the W3C
    context in `headers` if given.

    For request-level work (an HTTP request, a reconcile tick): per-record paths check
    `tracing_enabled()` once per batch instead.
    """
    if not _enabled:
        return nullcontext()
    parent = trace.get_current_span().get_span_context()
    if parent.is_valid and not parent.trace_flags.sampled:
        # A child follows its parent's sampling decision: under an unsampled span nothing is made. At 1%
        # sampling that is 99 requests in 100, which would each pay for a sampler call and a context switch.
        return nullcontext()
    context = propagate.extract(headers) if headers is not None and not parent.is_valid else None
    return tracer(tracer_name).start_as_current_span(name, context=context, kind=kind, attributes=attributes)


@functools.cache
def tracer(name: str) -> trace.Tracer:
    """The global provider's tracer called `name`, made once: `trace.get_tracer` costs tens of µs a call.

    Made before `configure_tracing`, it is the API's proxy, which turns into the real tracer once a
    provider is installed.
    """
    return trace.get_tracer(name)


# --------------------------------------------------------------------------- W3C context in Kafka headers


def kafka_headers(context: Context | None = None) -> list[tuple[str, bytes]]:
    """The `traceparent` (and `tracestate`) headers for a record produced in `context` (default: current)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return [(name, value.encode()) for name, value in carrier.items()]


def context_from_kafka_headers(headers: KafkaHeaders | None) -> Context | None:
    """The producer's context carried by a record's headers, or None when the record carries none."""
    if not headers:
        return None
    # Header values are whatever a producer wrote: latin-1 decodes any bytes, and a value that is not a
    # W3C context is ignored by the propagator, so no record can fail here.
    carrier = {
        name: value.decode("latin-1") if isinstance(value, bytes) else value
        for name, value in headers
        if name in _PROPAGATED and value is not None
    }
    if "traceparent" not in carrier:
        return None
    return propagate.extract(carrier)


def sampled_traceparent(headers: KafkaHeaders | None) -> bytes | str | None:
    """A record's `traceparent` if its producer sampled it (a string check, no parsing), else None.

    The trace flags are the last two hex digits; bit 0 set means sampled. Per-record consumer spans are
    made only for these, so unsampled traffic costs one header scan. A malformed header is not sampled
    (a record must never fail for what a producer wrote in its headers).
    """
    if not headers:
        return None
    for name, value in headers:
        if name == "traceparent" and value is not None and len(value) == 55:
            try:
                return value if int(value[-2:], 16) & 1 else None
            except ValueError:
                return None
    return None


class KafkaSendSpans:
    """A producer span per record sent to `topic`, and the headers that carry its context.

    The sampler decides per record; an unsampled record gets no header (downstream then starts no span
    for it either), and attributes are built only for sampled ones, so 1% sampling costs little more
    than the sampling decision itself.
    """

    def __init__(self, topic: str, tracer_name: str, provider: trace.TracerProvider | None = None) -> None:
        self.topic = topic
        self.name = span_name("send", topic)
        self._tracer = trace.get_tracer(tracer_name, tracer_provider=provider)

    def begin(
        self, key: str | None, transaction_id: str
    ) -> tuple[trace.Span, list[tuple[str, bytes]] | None]:
        span = self._tracer.start_span(self.name, kind=trace.SpanKind.PRODUCER)
        if not span.is_recording():
            return span, None
        span.set_attributes(kafka_attributes("send", self.topic, key=key))
        span.set_attribute(TRANSACTION_ID, transaction_id)
        return span, kafka_headers(trace.set_span_in_context(span))


# --------------------------------------------------------------------------- semantic-convention attributes

#: Every span about one transaction carries its id, so a trace store finds the transaction's trace by it.
TRANSACTION_ID = "fraudops.transaction_id"


def kafka_attributes(
    operation: str,
    topic: str,
    *,
    key: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    consumer_group: str | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Messaging attributes for a Kafka span (`operation`: send, receive, process or settle)."""
    attributes: dict[str, Any] = {
        messaging.MESSAGING_SYSTEM: "kafka",
        messaging.MESSAGING_OPERATION_NAME: operation,
        messaging.MESSAGING_OPERATION_TYPE: "send" if operation == "send" else operation,
        messaging.MESSAGING_DESTINATION_NAME: topic,
    }
    optional = {
        messaging.MESSAGING_KAFKA_MESSAGE_KEY: key,
        messaging.MESSAGING_DESTINATION_PARTITION_ID: None if partition is None else str(partition),
        messaging.MESSAGING_KAFKA_OFFSET: offset,
        messaging.MESSAGING_CONSUMER_GROUP_NAME: consumer_group,
        messaging.MESSAGING_BATCH_MESSAGE_COUNT: batch_size,
    }
    attributes.update({name: value for name, value in optional.items() if value is not None})
    return attributes


def postgres_attributes(
    operation: str,
    table: str,
    *,
    database: str | None = None,
    host: str | None = None,
    port: int | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Database attributes for a PostgreSQL span (`operation`: COPY, INSERT, SELECT, ...)."""
    attributes: dict[str, Any] = {
        db.DB_SYSTEM_NAME: "postgresql",
        db.DB_OPERATION_NAME: operation,
        db.DB_COLLECTION_NAME: table,
        db.DB_QUERY_SUMMARY: f"{operation} {table}",
    }
    optional = {
        db.DB_NAMESPACE: database,
        server.SERVER_ADDRESS: host,
        server.SERVER_PORT: port,
        db.DB_OPERATION_BATCH_SIZE: batch_size if batch_size and batch_size > 1 else None,
    }
    attributes.update({name: value for name, value in optional.items() if value is not None})
    return attributes


def span_name(operation: str, target: str) -> str:
    """Span names as the conventions spell them: `{operation} {destination or collection}`."""
    return f"{operation} {target}"
