"""Prometheus metrics shared by every service that decides (the gateway and the stream consumer).

Defined once here, so a process that imports both paths (tests, tools) registers them once, and the
rollout analysis reads one metric with one set of labels whichever path decided.
"""

from __future__ import annotations

from prometheus_client import Counter

DECISIONS = Counter(
    "fraudops_decisions_total",
    "Decisions by variant and outcome (shadow decisions included).",
    ["source", "variant", "model_version", "outcome", "shadow"],
)
FEEDBACK = Counter(
    "fraudops_feedback_total",
    "Confirmed labels received, by the decision the model had made and the label.",
    ["model_version", "decision", "label"],
)
