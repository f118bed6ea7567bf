"""Model monitoring as Prometheus metrics, per model version and variant, for both decision paths.

What a rollout and an on-call person judge a model by: the live score distribution
(`fraudops_score`), drift of every feature against the training distribution
(`fraudops_feature_psi`, see `fraudops.drift`), alert rates (`fraudops_alerts_total`; fraud rates come
from `fraudops_decisions_total`), and, as labels arrive, precision and recall on feedback
(`fraudops_feedback_total`, by label arrival; `fraudops_feedback_cohort_*`, over the matured cohort
of `fraudops.feedback_quality`) and the time from a decision to its label
(`fraudops_feedback_delay_seconds`).
Labels arrive days late (chargebacks), so precision and recall are read over windows of label arrival
at least as long as the label delay (the model dashboard uses a day for precision and the alert rules
six hours with a minimum count).

Metrics are updated in bulk per batch: one `observe` per decision costs microseconds that a
20,000-records-a-second consumer does not have. The gateway decides one transaction a request, so a
variant's monitor gathers small observations and folds them in every `FOLD_ROWS` rows or
`FOLD_EVERY_S`, whichever comes first. Feature drift is computed when it is read: a scrape (any
collection of the default registry) first folds what was gathered, then publishes the PSI of every
drift monitor that observed rows since its last publication, so a scrape never misses an observation
made before it.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import numpy as np
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

from fraudops.drift import DriftMonitor, ReferenceHistograms, read_reference
from fraudops.feedback_quality import CohortQuality

#: A variant monitor folds gathered observations into its metrics at this many rows...
FOLD_ROWS = 64
#: ...or when the oldest gathered one is this old (and before every scrape).
FOLD_EVERY_S = 1.0
#: Monitors holding observations not yet folded into their metrics.
_GATHERING: weakref.WeakSet[VariantMonitor] = weakref.WeakSet()
_GATHERING_LOCK = threading.Lock()
#: Drift monitors that observed rows since their PSI was last published.
_UNPUBLISHED: weakref.WeakSet[FeatureDrift] = weakref.WeakSet()
_UNPUBLISHED_LOCK = threading.Lock()


class _CatchUpBeforeScrape:
    """A collector without metrics of its own, registered before this module's metrics: the registry
    collects in registration order, so every scrape first folds the gathered observations and then
    publishes the drift of every row observed so far."""

    def collect(self) -> Iterable[Metric]:
        with _GATHERING_LOCK:
            monitors = list(_GATHERING)
        for monitor in monitors:
            monitor.fold()
        with _UNPUBLISHED_LOCK:
            drifts = list(_UNPUBLISHED)
        for drift in drifts:
            drift.publish()
        return ()


REGISTRY.register(_CatchUpBeforeScrape())

SCORE_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99)
_DAY_S = 86_400
FEEDBACK_DELAY_BUCKETS = (
    60,
    600,
    3600,
    6 * 3600,
    _DAY_S,
    2 * _DAY_S,
    3 * _DAY_S,
    7 * _DAY_S,
    14 * _DAY_S,
    30 * _DAY_S,
    60 * _DAY_S,
)

SCORES = Histogram(
    "fraudops_score",
    "Fraud probabilities by variant and model version (shadow decisions included).",
    ["source", "variant", "model_version", "shadow"],
    buckets=SCORE_BUCKETS,
)
ALERTS = Counter(
    "fraudops_alerts_total",
    "Fraud alerts raised (deciding fraud decisions).",
    ["source", "variant", "model_version"],
)
# Made at zero with each variant's monitor (a warm-up makes them), so an error rate has a series to rate
# and a dashboard panel has data before the first failure.
SCORING_ERRORS = Counter(
    "fraudops_scoring_errors_total",
    "Scoring calls of a variant that failed.",
    ["source", "variant", "model_version"],
)
FEATURE_PSI = Gauge(
    "fraudops_feature_psi",
    "Population stability index of a feature's live distribution against the training reference "
    "stored in the model artifact (decayed over ~20,000 rows).",
    ["source", "variant", "model_version", "feature"],
)
FEEDBACK_DELAY = Histogram(
    "fraudops_feedback_delay_seconds",
    "From a decision to its confirmed label (for fraud decisions: alert to feedback).",
    ["model_version", "decision"],
    buckets=FEEDBACK_DELAY_BUCKETS,
)

FEEDBACK_COHORT_PRECISION = Gauge(
    "fraudops_feedback_cohort_precision",
    "Share of flagged decisions labelled fraud, over the matured cohort (decisions one label delay old; "
    "NaN without a flag).",
    ["model_version", "variant"],
)
FEEDBACK_COHORT_RECALL = Gauge(
    "fraudops_feedback_cohort_recall",
    "Share of labelled frauds the model flagged, over the matured cohort (NaN without a labelled fraud).",
    ["model_version", "variant"],
)
FEEDBACK_COHORT_DECISIONS = Gauge(
    "fraudops_feedback_cohort_decisions",
    "Acting decisions in the matured cohort, by whether a label arrived.",
    ["model_version", "variant", "labelled"],
)


def publish_cohort_qualities(qualities: Sequence[CohortQuality]) -> None:
    """Set the cohort gauges of every model version and variant with decisions in the cohort, and remove
    those of the versions and variants the cohort no longer has (a retired model must not keep its last
    precision and recall forever).

    The new values are set before the old label sets go, so that a scrape in between sees no gap.
    """
    published: set[tuple[str, ...]] = {(quality.model_version, quality.variant) for quality in qualities}
    for quality in qualities:
        labels = (quality.model_version, quality.variant)
        FEEDBACK_COHORT_PRECISION.labels(*labels).set(
            math.nan if quality.precision is None else quality.precision
        )
        FEEDBACK_COHORT_RECALL.labels(*labels).set(math.nan if quality.recall is None else quality.recall)
        FEEDBACK_COHORT_DECISIONS.labels(*labels, "true").set(quality.labelled)
        FEEDBACK_COHORT_DECISIONS.labels(*labels, "false").set(quality.decisions - quality.labelled)
    kept: dict[Gauge, set[tuple[str, ...]]] = {
        FEEDBACK_COHORT_PRECISION: published,
        FEEDBACK_COHORT_RECALL: published,
        FEEDBACK_COHORT_DECISIONS: {(*key, labelled) for key in published for labelled in ("true", "false")},
    }
    for gauge, keep in kept.items():
        for stale in _exported_label_sets(gauge) - keep:
            gauge.remove(*stale)


def _exported_label_sets(metric: Any) -> set[tuple[str, ...]]:
    """The label values (in the metric's label order) of every series a metric exports now."""
    return {tuple(sample.labels.values()) for family in metric.collect() for sample in family.samples}


def observe_many(histogram: Any, values: np.ndarray) -> None:
    """Add many observations to one labelled histogram at once (as `observe` would, value by value).

    prometheus_client keeps a counter per `le` bucket and a sum: a value goes to the first bucket whose
    bound is at or above it, so the counts come from one searchsorted and one bincount.
    """
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return
    bounds = np.asarray(histogram._upper_bounds[:-1])  # without +Inf
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds) + 1)
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(int(count))
    histogram._sum.inc(float(values.sum()))


class FeatureDrift:
    """A model's feature drift against the training reference in its artifact, published as
    `fraudops_feature_psi` under fixed labels when the registry is collected (a scrape).

    Both decision paths keep one per variant (`VariantMonitor`); the KServe predictor keeps one for the
    version it serves, since a variant scored remotely is only ever seen whole by its predictor.
    Computing and setting a PSI per feature on every batch would cost more than it tells, so a batch only
    adds its counts and a scrape computes the PSI over every row observed before it. (Published at most
    once a second as batches came, the rows after the last publication stayed unexported once traffic
    stopped: a drift that came in one short burst never reached Prometheus.) The predictor scores on
    several threads at once: a lock keeps the counts consistent.
    """

    def __init__(
        self,
        reference: ReferenceHistograms,
        labels: tuple[str, str, str],  # source, variant, model_version
        feature_names: Sequence[str] | None = None,
    ) -> None:
        self.monitor = DriftMonitor(reference)
        self._columns: np.ndarray | None = None
        if feature_names is not None and tuple(feature_names) != reference.feature_names:
            position = {name: index for index, name in enumerate(feature_names)}
            missing = [name for name in reference.feature_names if name not in position]
            if missing:
                raise ValueError(f"the drift reference names features the model does not have: {missing[:5]}")
            self._columns = np.asarray([position[name] for name in reference.feature_names])
        self.label_sets = [(*labels, name) for name in reference.feature_names]
        self._gauges = [FEATURE_PSI.labels(*label_set) for label_set in self.label_sets]
        self._lock = threading.Lock()

    def observe(self, features: np.ndarray) -> None:
        """Add a batch of feature rows (columns in the model's order); the next scrape publishes them."""
        if not len(features):
            return
        with self._lock:
            self.monitor.observe(features if self._columns is None else features[:, self._columns])
            with _UNPUBLISHED_LOCK:
                _UNPUBLISHED.add(self)

    def publish(self) -> None:
        """Set the gauges to the PSI of every row observed so far (none before the monitor's minimum)."""
        with self._lock:
            with _UNPUBLISHED_LOCK:
                _UNPUBLISHED.discard(self)
            psi = self.monitor.psi()
            if psi is None:
                return
            for gauge, value in zip(self._gauges, psi.tolist(), strict=True):
                gauge.set(value)

    def forget(self) -> None:
        """Remove the gauges: a model no longer scored must not keep its last drift (and alert) forever."""
        for label_set in self.label_sets:
            FEATURE_PSI.remove(*label_set)


class VariantMonitor:
    """One variant's monitoring on one decision path: its scores, alerts and feature drift.

    Observations of fewer than `FOLD_ROWS` rows (the gateway's one a request) are gathered and folded
    in together (module docstring); a folded group's rows count in the drift's decay as one batch, as
    a stream batch's rows do."""

    def __init__(
        self,
        source: str,
        variant: str,
        model_version: str,
        shadow: bool,
        reference: ReferenceHistograms | None,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        labels = (source, variant, model_version)
        self.label_sets: dict[Any, tuple[str, ...]] = {
            SCORES: (*labels, "true" if shadow else "false"),
            ALERTS: labels,
            SCORING_ERRORS: labels,
        }
        self.scores = SCORES.labels(*self.label_sets[SCORES])
        self.alerts = ALERTS.labels(*labels)
        self.errors = SCORING_ERRORS.labels(*labels)
        self.drift = FeatureDrift(reference, labels, feature_names) if reference is not None else None
        self._lock = threading.Lock()
        self._scores: list[np.ndarray] = []
        self._features: list[np.ndarray] = []
        self._alerts = 0
        self._rows = 0
        self._first_at = 0.0  # when the oldest gathered observation came

    def observe(self, scores: np.ndarray, alerts: int = 0, features: np.ndarray | None = None) -> None:
        if len(scores) >= FOLD_ROWS:  # a batch: in at once, after what was gathered before it
            with self._lock:
                self._fold()
                self._add(scores, alerts, features)
            return
        now = time.monotonic()
        with self._lock:
            if not self._rows:
                self._first_at = now
                with _GATHERING_LOCK:
                    _GATHERING.add(self)
            self._scores.append(scores)
            if features is not None:
                self._features.append(features)
            self._alerts += alerts
            self._rows += len(scores)
            if self._rows >= FOLD_ROWS or now - self._first_at >= FOLD_EVERY_S:
                self._fold()

    def fold(self) -> None:
        """Fold the gathered observations into the metrics now."""
        with self._lock:
            self._fold()

    def _fold(self) -> None:
        if not self._rows:
            return
        scores, features, alerts = self._scores, self._features, self._alerts
        self._scores, self._features, self._alerts, self._rows = [], [], 0, 0
        with _GATHERING_LOCK:
            _GATHERING.discard(self)
        self._add(
            np.concatenate(scores) if len(scores) > 1 else scores[0],
            alerts,
            (np.concatenate(features) if len(features) > 1 else features[0]) if features else None,
        )

    def _add(self, scores: np.ndarray, alerts: int, features: np.ndarray | None) -> None:
        observe_many(self.scores, scores)
        if alerts:
            self.alerts.inc(alerts)
        if self.drift is not None and features is not None:
            self.drift.observe(features)

    def forget(self, keep: Collection[tuple[Any, tuple[str, ...]]] = ()) -> None:
        """Remove this variant's series, except those in `keep` (metric, label values): a successor with
        the same labels goes on exporting them."""
        for metric, label_set in self.series():
            if (metric, label_set) not in keep:
                metric.remove(*label_set)

    def series(self) -> set[tuple[Any, tuple[str, ...]]]:
        """(metric, label values) of every series this monitor exports."""
        drift = self.drift.label_sets if self.drift is not None else []
        return set(self.label_sets.items()) | {(FEATURE_PSI, label_set) for label_set in drift}


class MonitorSet:
    """The VariantMonitors of one decision path, made on first use for each variant, version and mode.

    A variant scored in-process carries its artifact, whose drift reference it compares with; a
    remote one (a KServe predictor) is compared by that predictor, which holds the artifact.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._monitors: dict[tuple[str, str, bool], VariantMonitor] = {}

    @staticmethod
    def key(variant: str, scorer: Any, shadow: bool) -> tuple[str, str, bool]:
        return (variant, str(scorer.model_version), shadow)

    def observe(
        self,
        variant: str,
        scorer: Any,
        shadow: bool,
        scores: np.ndarray,
        flagged: np.ndarray,
        features: np.ndarray,
    ) -> None:
        monitor = self.prepare(variant, scorer, shadow)
        monitor.observe(scores, alerts=0 if shadow else int(np.count_nonzero(flagged)), features=features)

    def count_error(self, variant: str, scorer: Any, shadow: bool) -> None:
        """A failed scoring call of the variant (its monitor is made if it never scored)."""
        self.prepare(variant, scorer, shadow).errors.inc()

    def prepare(self, variant: str, scorer: Any, shadow: bool) -> VariantMonitor:
        """The variant's monitor, made (its drift reference read) on first use; a warm-up makes it
        without observing anything, so that the first real decision does not pay for it."""
        key = self.key(variant, scorer, shadow)
        monitor = self._monitors.get(key)
        if monitor is None:
            artifact = getattr(scorer, "artifact", None)
            reference = read_reference(artifact.path) if artifact is not None else None
            monitor = self._monitors[key] = VariantMonitor(
                self.source, variant, key[1], shadow, reference, getattr(scorer, "feature_names", None)
            )
        return monitor

    def take_over(self, previous: MonitorSet, keys: set[tuple[str, str, bool]]) -> None:
        """Carry on `previous`'s monitors of the `keys` this set will observe (their drift history goes
        on) and remove the series of the others, which no decision updates any more: a rolled-back
        canary's last drift would otherwise keep FraudopsFeatureDrift firing until a restart."""
        for key, monitor in previous._monitors.items():
            if key in keys:
                self._monitors[key] = monitor
        kept = {series for monitor in self._monitors.values() for series in monitor.series()}
        # `previous` keeps its monitors: a request still deciding with it updates either a kept series or a
        # removed one (no longer exported), rather than making a removed label set anew.
        for key, monitor in previous._monitors.items():
            if key not in keys:
                monitor.forget(keep=kept)


def observe_feedback_delay(model_version: str, decided_fraud: bool, delay_s: float) -> None:
    FEEDBACK_DELAY.labels(model_version, "fraud" if decided_fraud else "legitimate").observe(
        max(delay_s, 0.0)
    )
