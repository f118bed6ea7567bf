"""Model-level Prometheus metrics, next to KServe's own request metrics on the same /metrics.

Feature drift is the decision paths' own series, `fraudops_feature_psi` (`fraudops.monitoring`), with
`source="predictor"`, the served version as `model_version` and no variant: a predictor serves a version,
not a routing variant (a cluster scrape adds the namespace and InferenceService that tell which). A
variant scored through a predictor is seen whole only here, so this is where its drift is measured.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from fraudops.drift import ReferenceHistograms
from fraudops.monitoring import SCORE_BUCKETS, FeatureDrift, observe_many

PREDICTOR_SOURCE = "predictor"  # the `source` of the predictor's drift series
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
    # One observe per row is slow in Python for big batches: bucket in bulk instead.
    observe_many(SCORES.labels(model, version), scores)


def feature_drift(reference: ReferenceHistograms, version: str, feature_names: Sequence[str]) -> FeatureDrift:
    """The served version's feature drift against its training reference (see the module docstring)."""
    return FeatureDrift(reference, (PREDICTOR_SOURCE, "", version), feature_names)
