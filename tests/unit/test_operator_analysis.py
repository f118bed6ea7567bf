"""The analysis verdict (pure) and the PromQL it sends; the live Prometheus path is tested in tests/k8s."""

from __future__ import annotations

import socket

from fraudops_operator import crd
from fraudops_operator.analysis import (
    DEFAULT_QUERIES,
    Outcome,
    VariantMetrics,
    VariantQuery,
    analyse,
    judge,
    population_stability_index,
)
from fraudops_operator.resources import AnalysisSpec

BUCKETS = (0.1, 0.2, 0.5, 0.9, float("inf"))


def limits(**overrides: object) -> AnalysisSpec:
    spec = crd.apply_defaults(crd.FRAUD_MODEL_SPEC, {"rollout": {"analysis": overrides}})
    return AnalysisSpec.from_spec(spec["rollout"]["analysis"])


def cumulative(*per_bucket: float) -> dict[float, float]:
    total, out = 0.0, {}
    for bound, count in zip(BUCKETS, per_bucket, strict=True):
        total += count
        out[bound] = total
    return out


HEALTHY = VariantMetrics(
    samples=900,
    error_rate=0.001,
    p99_latency_ms=12.0,
    score_buckets=cumulative(800, 60, 25, 10, 5),
    feedback_precision=0.9,
)


def metrics(**changes: object) -> VariantMetrics:
    return VariantMetrics(**{**HEALTHY.__dict__, **changes})


def test_identical_score_distributions_have_no_drift() -> None:
    assert population_stability_index(cumulative(800, 60, 25, 10, 5), cumulative(80, 6, 2.5, 1, 0.5)) == 0


def test_a_shifted_score_distribution_drifts() -> None:
    psi = population_stability_index(cumulative(800, 60, 25, 10, 5), cumulative(300, 300, 200, 150, 50))
    assert psi is not None and psi > 0.2


def test_a_healthy_candidate_passes_with_its_numbers_in_the_summary() -> None:
    verdict = judge(limits(), HEALTHY, HEALTHY)
    assert verdict.outcome == Outcome.PASSED
    assert "error rate 0.0010 ≤ maxErrorRate 0.0100" in verdict.summary
    assert "samples 900 ≥ 500" in verdict.summary


def test_too_few_samples_is_inconclusive() -> None:
    verdict = judge(limits(minSamples=1000), HEALTHY, HEALTHY)
    assert (verdict.outcome, verdict.reason) == (Outcome.INCONCLUSIVE, "InsufficientSamples")
    assert "900 decisions" in verdict.summary


def test_an_error_rate_over_the_limit_fails_quoting_both_variants() -> None:
    verdict = judge(limits(), metrics(error_rate=0.052), HEALTHY)
    assert (verdict.outcome, verdict.reason) == (Outcome.FAILED, "ErrorRateTooHigh")
    assert "error rate 0.0520 > maxErrorRate 0.0100 (stable 0.0010)" in verdict.summary


def test_a_slow_candidate_fails_on_p99_latency() -> None:
    verdict = judge(limits(maxP99LatencyMs=50), metrics(p99_latency_ms=80.0), HEALTHY)
    assert (verdict.outcome, verdict.reason) == (Outcome.FAILED, "LatencyTooHigh")
    assert "p99 latency 80.0 ms > maxP99LatencyMs 50.0 ms" in verdict.summary


def test_drifting_scores_fail() -> None:
    verdict = judge(limits(), metrics(score_buckets=cumulative(300, 300, 200, 150, 50)), HEALTHY)
    assert (verdict.outcome, verdict.reason) == (Outcome.FAILED, "ScoreDrift")


def test_precision_is_judged_only_when_asked_and_only_when_labels_exist() -> None:
    low = metrics(feedback_precision=0.5)
    assert judge(limits(), low, HEALTHY).outcome == Outcome.PASSED
    assert judge(limits(minFeedbackPrecision=0.8), low, HEALTHY).reason == "PrecisionTooLow"
    unlabelled = judge(limits(minFeedbackPrecision=0.8), metrics(feedback_precision=None), HEALTHY)
    assert unlabelled.outcome == Outcome.PASSED and "no labelled feedback yet" in unlabelled.summary


def test_feature_drift_is_judged_only_when_asked_and_only_with_drift_metrics() -> None:
    drifted = metrics(max_feature_psi=0.6)
    assert judge(limits(), drifted, HEALTHY).outcome == Outcome.PASSED
    failed = judge(limits(maxFeaturePSI=0.25), drifted, metrics(max_feature_psi=0.03))
    assert (failed.outcome, failed.reason) == (Outcome.FAILED, "FeatureDrift")
    assert "feature PSI vs training 0.600 > maxFeaturePSI 0.250 (stable 0.030)" in failed.summary
    unmeasured = judge(limits(maxFeaturePSI=0.25), metrics(max_feature_psi=None), HEALTHY)
    assert (
        unmeasured.outcome == Outcome.PASSED
        and "feature PSI vs training: no data, not judged" in unmeasured.summary
    )


def test_the_drift_query_reads_the_variants_drift_from_the_decision_side_or_its_predictor() -> None:
    who = VariantQuery("canary", "v2", "card-fraud", "fraud", "card-fraud-v2")
    assert who.fill(DEFAULT_QUERIES["featurePSI"], "5m") == (
        'max(max_over_time(fraudops_feature_psi{namespace="fraud",variant="canary",model_version="v2"}[5m]) '
        'or max_over_time(fraudops_feature_psi{namespace="fraud",serving_kserve_io_inferenceservice='
        '"card-fraud-v2"}[5m]))'
    )
    assert 'fraudops_score_bucket{namespace="fraud",variant="canary",model_version="v2"}' in who.fill(
        DEFAULT_QUERIES["scoreBuckets"], "5m"
    )


def test_missing_latency_data_is_inconclusive_not_a_pass() -> None:
    verdict = judge(limits(), metrics(p99_latency_ms=float("nan")), HEALTHY)
    assert (verdict.outcome, verdict.reason) == (Outcome.INCONCLUSIVE, "MetricsMissing")


def test_placeholders_are_filled_without_touching_promql_braces() -> None:
    who = VariantQuery("canary", "2026-11-28", "card-fraud", "fraud", "card-fraud-2026-11-28")
    query = who.fill(DEFAULT_QUERIES["samples"], "5m")
    assert query == (
        'sum(increase(fraudops_decisions_total{namespace="fraud",variant="canary",'
        'model_version="2026-11-28"}[5m]))'
    )


def test_an_unreachable_prometheus_is_inconclusive_not_a_crash() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        who = VariantQuery("canary", "v2", "m", "ns", "m-v2")
        verdict = analyse(limits(prometheusUrl=f"http://127.0.0.1:{port}"), who, who)
    assert (verdict.outcome, verdict.reason) == (Outcome.INCONCLUSIVE, "MetricsUnavailable")
