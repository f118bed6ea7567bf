"""The operator's rollout metrics: phase as a state set, transitions counted once, verdicts with their numbers."""

from __future__ import annotations

from prometheus_client import REGISTRY

from fraudops_operator import metrics
from fraudops_operator.analysis import Outcome, VariantMetrics, judge
from fraudops_operator.resources import AnalysisSpec
from fraudops_operator.rollout import Phase, RolloutState


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def _limits() -> AnalysisSpec:
    return AnalysisSpec(
        interval_s=60,
        window="5m",
        min_samples=10,
        max_error_rate=0.01,
        max_p99_latency_ms=50,
        max_score_psi=0.2,
        min_feedback_precision=None,
        prometheus_url="http://127.0.0.1:9",
        max_feature_psi=0.25,
    )


def test_the_phase_is_one_for_the_current_phase_and_zero_for_the_others() -> None:
    metrics.observe_state(
        "ns-a", "m1", RolloutState(Phase.ANALYSING, candidate_version="v2", step=1), weight=25
    )
    assert value("fraudops_rollout_phase", namespace="ns-a", fraudmodel="m1", phase="Analysing") == 1
    assert value("fraudops_rollout_phase", namespace="ns-a", fraudmodel="m1", phase="Stable") == 0
    assert value("fraudops_rollout_candidate_weight", namespace="ns-a", fraudmodel="m1") == 25
    assert value("fraudops_rollout_step", namespace="ns-a", fraudmodel="m1") == 1


def test_a_transition_is_counted_only_when_the_phase_changes() -> None:
    rolled_back = RolloutState(Phase.ROLLED_BACK, candidate_version="v2")
    metrics.observe_transition("ns-b", "m1", Phase.ANALYSING, rolled_back)
    metrics.observe_transition("ns-b", "m1", Phase.ROLLED_BACK, rolled_back)
    assert (
        value("fraudops_rollout_transitions_total", namespace="ns-b", fraudmodel="m1", phase="RolledBack")
        == 1
    )


def test_a_verdict_is_counted_with_the_numbers_it_judged() -> None:
    limits = _limits()
    candidate = VariantMetrics(samples=500, error_rate=0.05, p99_latency_ms=12.0)
    stable = VariantMetrics(samples=5000, error_rate=0.001, p99_latency_ms=9.0)
    verdict = judge(limits, candidate, stable)
    assert verdict.outcome == Outcome.FAILED

    metrics.observe_verdict("ns-c", "m1", verdict)

    assert (
        value(
            "fraudops_rollout_analysis_total",
            namespace="ns-c",
            fraudmodel="m1",
            outcome="Failed",
            reason="ErrorRateTooHigh",
        )
        == 1
    )
    assert (
        value(
            "fraudops_rollout_analysis_value",
            namespace="ns-c",
            fraudmodel="m1",
            metric="errorRate",
            variant="candidate",
        )
        == 0.05
    )
    assert (
        value(
            "fraudops_rollout_analysis_value",
            namespace="ns-c",
            fraudmodel="m1",
            metric="samples",
            variant="stable",
        )
        == 5000
    )


def test_a_verdict_removes_the_numbers_of_the_last_one_it_did_not_measure() -> None:
    measured = VariantMetrics(samples=500, error_rate=0.0, p99_latency_ms=12.0, max_feature_psi=0.3)
    metrics.observe_verdict("ns-d", "m1", judge(_limits(), measured, measured))
    psi = {"namespace": "ns-d", "fraudmodel": "m1", "metric": "featurePSI", "variant": "candidate"}
    assert value("fraudops_rollout_analysis_value", **psi) == 0.3

    unmeasured = VariantMetrics(samples=600, error_rate=0.0, p99_latency_ms=12.0)  # no drift data this time
    metrics.observe_verdict("ns-d", "m1", judge(_limits(), unmeasured, unmeasured))

    assert value("fraudops_rollout_analysis_value", **psi) is None
    samples = {"namespace": "ns-d", "fraudmodel": "m1", "metric": "samples", "variant": "candidate"}
    assert value("fraudops_rollout_analysis_value", **samples) == 600


def test_a_deleted_fraud_model_leaves_no_rollout_gauges_behind() -> None:
    state = RolloutState(Phase.ANALYSING, candidate_version="v2", step=1)
    healthy = VariantMetrics(samples=500, error_rate=0.0, p99_latency_ms=12.0)
    for fraudmodel in ("gone", "kept"):
        metrics.observe_state("ns-e", fraudmodel, state, weight=25)
        metrics.observe_verdict("ns-e", fraudmodel, judge(_limits(), healthy, healthy))

    metrics.forget("ns-e", "gone")

    gauges = (
        "fraudops_rollout_phase",
        "fraudops_rollout_candidate_weight",
        "fraudops_rollout_step",
        "fraudops_rollout_analysis_value",
    )
    left = {
        (family.name, sample.labels["fraudmodel"])
        for family in REGISTRY.collect()
        if family.name in gauges
        for sample in family.samples
        if sample.labels.get("namespace") == "ns-e"
    }
    assert left == {(name, "kept") for name in gauges}
