"""Model-level Prometheus metrics, next to KServe's own request metrics on the same /metrics."""

from __future__ import annotations

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

SCORE_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99)

MODEL_INFO = Gauge(
    "fraudops_model_info", "The model version this predictor serves (value 1).", ["model", "version"]
)
SCORES = Histogram(
    "fraudops_predictor_score", "Fraud probabilities returned.", ["model", "version"], buckets=SCORE_BUCKETS
)
DECISIONS = Counter(
    "fraudops_predictor_decisions_total",
    "Rows scored, by outcome at the model's threshold.",
    ["model", "version", "outcome"],
)
BATCH_ROWS = Histogram(
    "fraudops_predictor_batch_rows",
    "Rows per scoring call.",
    ["model"],
    buckets=(1, 10, 100, 500, 1000, 2000, 5000, 20000),
)
SCORING_SECONDS = Histogram(
    "fraudops_predictor_scoring_seconds",
    "Time in the booster per call.",
    ["model"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
)


def observe_batch(model: str, version: str, scores: np.ndarray, threshold: float, seconds: float) -> None:
    fraud = int((scores >= threshold).sum())
    DECISIONS.labels(model, version, "fraud").inc(fraud)
    DECISIONS.labels(model, version, "legitimate").inc(len(scores) - fraud)
    BATCH_ROWS.labels(model).observe(len(scores))
    SCORING_SECONDS.labels(model).observe(seconds)
    histogram = SCORES.labels(model, version)
    # One observe per row is slow in Python for big batches: bucket with numpy, then add the counts.
    if len(scores) <= 64:
        for score in scores.tolist():
            histogram.observe(score)
    else:
        _observe_many(histogram, scores)


def _observe_many(histogram: Histogram, scores: np.ndarray) -> None:
    # A score goes to the first bucket whose bound is >= it, as Histogram.observe does (`le` buckets).
    buckets = np.searchsorted(np.asarray(SCORE_BUCKETS), scores, side="left")
    counts = np.bincount(buckets, minlength=len(SCORE_BUCKETS) + 1)
    # prometheus_client keeps per-bucket counters and a sum; update them in bulk.
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        bucket.inc(int(count))
    histogram._sum.inc(float(scores.sum()))
