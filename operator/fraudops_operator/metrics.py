"""The operator's Prometheus metrics, served when FRAUDOPS_OPERATOR_METRICS_PORT is set: reconciles that ran,
each FraudModel's rollout phase and candidate weight, every phase change, and every analysis verdict with the
numbers it judged (the operator dashboard and the FraudopsCanaryRolledBack alert read them)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge

from fraudops_operator.analysis import Verdict
from fraudops_operator.rollout import Phase, RolloutState

RECONCILES = Counter(
    "fraudops_operator_reconciles_total",
    "Reconciles that ran to the end, by kind and namespace: one per object per tick. A flat line "
    "means the operator is stuck; a test that checks that a tick changed nothing waits on it.",
    ["kind", "namespace"],
)
PHASE = Gauge(
    "fraudops_rollout_phase",
    "1 for the phase each FraudModel's rollout is in, 0 for the others.",
    ["namespace", "fraudmodel", "phase"],
)
CANDIDATE_WEIGHT = Gauge(
    "fraudops_rollout_candidate_weight",
    "Percent of decisions (or customers, in an A-B test) routed to the candidate.",
    ["namespace", "fraudmodel"],
)
STEP = Gauge(
    "fraudops_rollout_step", "Index of the rollout step the candidate is in.", ["namespace", "fraudmodel"]
)
TRANSITIONS = Counter(
    "fraudops_rollout_transitions_total",
    "Rollout phase changes, by the phase entered.",
    ["namespace", "fraudmodel", "phase"],
)
ANALYSES = Counter(
    "fraudops_rollout_analysis_total",
    "Metric analyses of a candidate, by verdict.",
    ["namespace", "fraudmodel", "outcome", "reason"],
)
ANALYSIS_VALUE = Gauge(
    "fraudops_rollout_analysis_value",
    "The numbers the last analysis judged (samples, errorRate, p99LatencyMs, scorePSI, "
    "feedbackPrecision, featurePSI), per variant; a number it could not measure has no series.",
    ["namespace", "fraudmodel", "metric", "variant"],
)


def observe_state(namespace: str, fraudmodel: str, state: RolloutState, weight: int) -> None:
    """The rollout as it stands after this tick (set every tick, so a restarted operator reports it too)."""
    for phase in Phase:
        PHASE.labels(namespace, fraudmodel, phase.value).set(1 if phase == state.phase else 0)
    CANDIDATE_WEIGHT.labels(namespace, fraudmodel).set(weight)
    STEP.labels(namespace, fraudmodel).set(state.step)


def observe_transition(namespace: str, fraudmodel: str, previous: Phase | None, state: RolloutState) -> None:
    """Count a phase change once it is recorded in the status."""
    if previous != state.phase:
        TRANSITIONS.labels(namespace, fraudmodel, state.phase.value).inc()


def observe_verdict(namespace: str, fraudmodel: str, verdict: Verdict) -> None:
    """Count the verdict and publish the numbers it judged, and only those: a number the last verdict did
    not measure (no data this time) must not stand beside its numbers as if it had."""
    ANALYSES.labels(namespace, fraudmodel, verdict.outcome.value, verdict.reason).inc()
    measured = {(namespace, fraudmodel, metric, variant) for metric, variant, _ in verdict.numbers}
    for metric, variant, value in verdict.numbers:
        ANALYSIS_VALUE.labels(namespace, fraudmodel, metric, variant).set(value)
    for labels in _label_sets(ANALYSIS_VALUE, namespace, fraudmodel) - measured:
        ANALYSIS_VALUE.remove(*labels)


def forget(namespace: str, fraudmodel: str) -> None:
    """Remove a deleted FraudModel's gauges (its phase, weight, step and last numbers would otherwise stay
    until the operator restarts). The counters stay: their history is what `increase()` reads."""
    for gauge in (PHASE, CANDIDATE_WEIGHT, STEP, ANALYSIS_VALUE):
        for labels in _label_sets(gauge, namespace, fraudmodel):
            gauge.remove(*labels)


def _label_sets(metric: Gauge, namespace: str, fraudmodel: str) -> set[tuple[str, ...]]:
    """The label values of the series a gauge exports for one FraudModel (through its public `collect`)."""
    return {
        tuple(sample.labels.values())
        for family in metric.collect()
        for sample in family.samples
        if sample.labels["namespace"] == namespace and sample.labels["fraudmodel"] == fraudmodel
    }


Handler = TypeVar("Handler", bound=Callable[..., Any])


def counted(kind: str) -> Callable[[Handler], Handler]:
    """Count each call of a reconcile handler that returns (one that raises did not reconcile)."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def reconcile(*args: Any, **kwargs: Any) -> Any:
            result = handler(*args, **kwargs)
            RECONCILES.labels(kind, kwargs.get("namespace") or "").inc()
            return result

        return reconcile  # type: ignore[return-value]

    return wrap
