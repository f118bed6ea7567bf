"""The gateway's spans: a server span per HTTP request (continuing the caller's `traceparent`), the
steps of scoring inside it, and the deferred PostgreSQL write as a child of every request it stores.

    POST /predict                   SERVER: http.request.method, http.route, http.response.status_code
    ├── state lookup                INTERNAL: the customers' stored state (usually already held)
    ├── features                    INTERNAL
    ├── score                       INTERNAL: routing and scoring (a KServe call is its child)
    └── COPY decisions              CLIENT: db.system.name=postgresql, after the answer (batched writes)

With tracing off, `request_span` answers None and nothing else is made.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, MutableMapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from fraudops import tracing

TRACER = "fraudops_gateway"
_PROPAGATED = (b"traceparent", b"tracestate")
_UNTRACED = ("/metrics", "/health")  # scrapes and probes: a span each would bury the requests


def request_span(scope: MutableMapping[str, Any]) -> trace.Span | None:
    """A SERVER span for an HTTP request, child of the caller's context in its headers (None: tracing off)."""
    if not tracing.tracing_enabled() or scope["path"].startswith(_UNTRACED):
        return None
    # latin-1 decodes any bytes a client sends; a value that is not a W3C context is ignored by the propagator.
    carrier = {
        name.decode(): value.decode("latin-1")
        for name, value in scope.get("headers", ())
        if name in _PROPAGATED
    }
    return tracing.tracer(TRACER).start_span(
        f"{scope['method']} {scope['path']}",
        context=propagate.extract(carrier) if carrier else None,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": scope["method"], "url.path": scope["path"]},
    )


def finish_request_span(span: trace.Span, method: str, route: str | None, status: int) -> None:
    if not span.is_recording():  # sampled out: nothing to name or record
        span.end()
        return
    if route is not None:  # the route template names the span (known once the router matched)
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(trace.StatusCode.ERROR)
    span.end()


def current_context() -> trace.SpanContext | None:
    """The current span's context if it is sampled (so a later write can join its trace)."""
    if not tracing.tracing_enabled():
        return None
    context = trace.get_current_span().get_span_context()
    return context if context.is_valid and context.trace_flags.sampled else None


def write_spans(contexts: Iterable[trace.SpanContext | None], started_ns: int, rows: int) -> None:
    """A finished `COPY decisions` span under each request whose decisions one batched write stored."""
    ended_ns = time.time_ns()
    tracer = tracing.tracer(TRACER)
    attributes = tracing.postgres_attributes("COPY", "decisions", batch_size=rows)
    for context in contexts:
        if context is None:
            continue
        span = tracer.start_span(
            "COPY decisions",
            context=trace.set_span_in_context(trace.NonRecordingSpan(context)),
            kind=SpanKind.CLIENT,
            start_time=started_ns,
            attributes=attributes,
        )
        span.end(end_time=ended_ns)
