"""The gateway's Prometheus metrics: RED per route, and decisions, fraud rate and scores per variant."""

from __future__ import annotations

from fraudops.sink import Decision
from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0)
SCORE_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99)

REQUESTS = Counter("fraudops_gateway_requests_total", "HTTP requests.", ["route", "method", "status"])
LATENCY = Histogram("fraudops_gateway_request_seconds", "HTTP request latency.", ["route"], buckets=LATENCY_BUCKETS)
DECISIONS = Counter("fraudops_decisions_total", "Decisions by variant and outcome (shadow decisions included).",
                    ["source", "variant", "model_version", "outcome", "shadow"])
SCORES = Histogram("fraudops_score", "Fraud probabilities by variant.", ["source", "variant", "shadow"],
                   buckets=SCORE_BUCKETS)
PERSIST_QUEUE = Gauge("fraudops_gateway_persist_queue", "Decisions answered but not yet stored.")
PERSISTED = Counter("fraudops_gateway_persisted_total", "Transactions stored in PostgreSQL.")
REJECTED = Counter("fraudops_gateway_rejected_total", "Requests refused before scoring.", ["reason"])


def observe_decisions(decisions: list[Decision]) -> None:
    for decision in decisions:
        shadow = "true" if decision.shadow else "false"
        outcome = "fraud" if decision.is_fraud else "legitimate"
        DECISIONS.labels(decision.source, decision.variant, decision.model_version, outcome, shadow).inc()
        SCORES.labels(decision.source, decision.variant, shadow).observe(decision.score)
