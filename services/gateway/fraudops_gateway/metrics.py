"""The gateway's Prometheus metrics: RED per route, and decisions, fraud rate and scores per variant."""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram

from fraudops.decision import Decision
from fraudops.metrics import DECISIONS
from fraudops_gateway.asgi import ASGIApp, Receive, Scope, Send
from fraudops_gateway.tracing import finish_request_span, request_span

LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0)

REQUESTS = Counter("fraudops_gateway_requests_total", "HTTP requests.", ["route", "method", "status"])
LATENCY = Histogram(
    "fraudops_gateway_request_seconds", "HTTP request latency.", ["route"], buckets=LATENCY_BUCKETS
)
PERSIST_QUEUE = Gauge("fraudops_gateway_persist_queue", "Decisions answered but not yet stored.")
PERSISTED = Counter("fraudops_gateway_persisted_total", "Transactions stored in PostgreSQL.")
PERSIST_FAILED = Counter(
    "fraudops_gateway_persist_failed_total",
    "Answered transactions PostgreSQL refused to store (each one is logged with the reason).",
)
STATE_REFRESHED = Counter(
    "fraudops_gateway_state_refreshed_total",
    "Customer states re-read because the stream consumer stored a newer one.",
)
CUSTOMERS_DROPPED = Counter(
    "fraudops_gateway_customers_dropped_total",
    "Customers whose state the gateway let go (GATEWAY_MAX_CUSTOMERS); re-read when they return.",
)
STATE_REFUSED = Counter(
    "fraudops_gateway_state_refused_total",
    "Stored customer states the gateway could not read (each one is logged); it scores those "
    "customers from what it holds.",
)
REJECTED = Counter("fraudops_gateway_rejected_total", "Requests refused before scoring.", ["reason"])
ENTITY_EPOCH = Gauge(
    "fraudops_gateway_entity_epoch",
    "The newest epoch of the entity table the gateway's mirror holds (ENTITY_TABLE=true; -1 before the "
    "first published one): its staleness is the request's epoch minus this.",
)
ENTITY_EPOCH.set(-1)
BACKGROUND_FAILURES = Counter(
    "fraudops_gateway_background_failures_total",
    "Unexpected failures of a background task (logged with the traceback; the task "
    "restarts and the gateway is not ready until it recovers).",
    ["task"],
)
INTERNAL_ERRORS = Counter(
    "fraudops_gateway_internal_errors_total",
    "Requests answered 500 (logged with the traceback; the caller gets no detail).",
)


_DECISION_CHILDREN: dict[tuple[str, str, str, bool, bool], Any] = {}


def observe_decisions(decisions: list[Decision]) -> None:
    """Count decisions (their scores, alerts and drift are observed where they are made: the Decider)."""
    for decision in decisions:
        key = (decision.source, decision.variant, decision.model_version, decision.is_fraud, decision.shadow)
        counter = _DECISION_CHILDREN.get(key)
        if counter is None:  # labels() costs a few µs; resolve each combination once
            shadow = "true" if decision.shadow else "false"
            outcome = "fraud" if decision.is_fraud else "legitimate"
            counter = _DECISION_CHILDREN[key] = DECISIONS.labels(
                decision.source, decision.variant, decision.model_version, outcome, shadow
            )
        counter.inc()


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """Counts and times every HTTP request by route template, as pure ASGI middleware.

    (Starlette's BaseHTTPMiddleware runs each request in an extra task and re-streams the response;
    that cost ~0.2 ms a request.) The route template is known after routing: Starlette's router
    writes it into the scope.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the response starts is answered with 500
        span = request_span(scope)

        async def send_status(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if span is None:
                await self.app(scope, receive, send_status)
            else:
                with trace.use_span(span, end_on_exit=False):
                    await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            method = scope["method"] if scope["method"] in _METHODS else "other"  # bounded label values
            self._observe(getattr(route, "path", "unmatched"), method, status, time.perf_counter() - started)
            if span is not None:
                finish_request_span(span, method, getattr(route, "path", None), status)

    def _observe(self, path: str, method: str, status: int, seconds: float) -> None:
        key = (path, method, status)
        children = self._children.get(key)
        if children is None:  # labels() costs a few µs; resolve each combination once
            children = self._children[key] = (
                REQUESTS.labels(path, method, str(status)),
                LATENCY.labels(path),
            )
        children[0].inc()
        children[1].observe(seconds)
