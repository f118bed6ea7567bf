"""The metric analysis against a real Prometheus HTTP API: the default PromQL, overrides, and bad queries."""

from __future__ import annotations

import re
from typing import Any

import pytest

from fraudops_operator import crd
from fraudops_operator.analysis import Outcome, VariantQuery, Verdict, analyse
from fraudops_operator.resources import AnalysisSpec
from tests.k8s.cluster import Cluster
from tests.k8s.objects import fast_analysis
from tests.k8s.prometheus import DRIFTED_SCORES, LocalPrometheus, Traffic, TrafficExporter

pytestmark = pytest.mark.k8s


def limits(prometheus: LocalPrometheus, **overrides: Any) -> AnalysisSpec:
    spec = crd.apply_defaults(
        crd.FRAUD_MODEL_SPEC, {"rollout": {"analysis": fast_analysis(prometheus.url, **overrides)}}
    )
    return AnalysisSpec.from_spec(spec["rollout"]["analysis"])


def variants(
    traffic: TrafficExporter, namespace: str, drift_measured_by: str = "decisions", **candidate: Any
) -> tuple[VariantQuery, VariantQuery]:
    queries = []
    for variant, version, profile in (("canary", "v2", candidate), ("stable", "v1", {})):
        isvc = f"card-fraud-{version}"
        traffic.send(
            Traffic(
                variant=variant,
                version=version,
                namespace=namespace,
                inferenceservice=isvc,
                model="card-fraud",
                drift_measured_by=drift_measured_by,
                **profile,
            )
        )
        queries.append(VariantQuery(variant, version, "card-fraud", namespace, isvc))
    return queries[0], queries[1]


def settled_verdict(
    cluster: Cluster, spec: AnalysisSpec, candidate: VariantQuery, stable: VariantQuery
) -> Verdict:
    """The first verdict once Prometheus has scraped enough of the new series."""
    return cluster.wait_for(
        lambda: (v := analyse(spec, candidate, stable)).outcome != Outcome.INCONCLUSIVE and v,
        "a conclusive verdict",
        timeout_s=30,
        every_s=0.5,
    )


def test_healthy_variants_pass_with_every_number_measured(
    cluster: Cluster, prometheus: LocalPrometheus, traffic: TrafficExporter, namespace: str
) -> None:
    candidate, stable = variants(traffic, namespace)
    verdict = settled_verdict(cluster, limits(prometheus), candidate, stable)
    assert verdict.outcome == Outcome.PASSED, verdict
    assert "error rate 0.0000 ≤ maxErrorRate 0.0100 (stable 0.0000)" in verdict.summary
    # 8 ms observations land in the 5–10 ms bucket: histogram_quantile interpolates inside it.
    assert re.search(r"p99 latency (5\.\d|[6-9]\.\d|10\.0) ms ≤ maxP99LatencyMs 50\.0 ms", verdict.summary), (
        verdict
    )
    assert "score PSI vs stable 0.000 ≤ maxScorePSI 0.200" in verdict.summary


def test_a_drifting_candidate_fails_on_score_psi(
    cluster: Cluster, prometheus: LocalPrometheus, traffic: TrafficExporter, namespace: str
) -> None:
    candidate, stable = variants(traffic, namespace, scores=DRIFTED_SCORES)
    verdict = settled_verdict(cluster, limits(prometheus), candidate, stable)
    assert (verdict.outcome, verdict.reason) == (Outcome.FAILED, "ScoreDrift"), verdict


def test_a_candidate_whose_features_drift_from_training_fails_on_feature_psi(
    cluster: Cluster, prometheus: LocalPrometheus, traffic: TrafficExporter, namespace: str
) -> None:
    candidate, stable = variants(traffic, namespace, feature_psi=0.6)
    verdict = settled_verdict(cluster, limits(prometheus, maxFeaturePSI=0.25), candidate, stable)
    assert (verdict.outcome, verdict.reason) == (Outcome.FAILED, "FeatureDrift"), verdict
    assert "feature PSI vs training 0.600 > maxFeaturePSI 0.250 (stable 0.020)" in verdict.summary
    assert ("featurePSI", "candidate", 0.6) in verdict.numbers


def test_a_remotely_scored_candidate_whose_features_drift_fails_on_its_predictors_psi(
    cluster: Cluster, prometheus: LocalPrometheus, traffic: TrafficExporter, namespace: str
) -> None:
    # What the operator deploys: every variant scored by its InferenceService, so only the predictors
    # measure drift (the gateway and consumer have no artifact to compare with).
    candidate, stable = variants(traffic, namespace, feature_psi=0.6, drift_measured_by="predictor")
    verdict = settled_verdict(cluster, limits(prometheus, maxFeaturePSI=0.25), candidate, stable)
    assert (verdict.outcome, verdict.reason) == (Outcome.FAILED, "FeatureDrift"), verdict
    assert "feature PSI vs training 0.600 > maxFeaturePSI 0.250 (stable 0.020)" in verdict.summary


def test_feature_drift_within_the_limit_passes(
    cluster: Cluster, prometheus: LocalPrometheus, traffic: TrafficExporter, namespace: str
) -> None:
    candidate, stable = variants(traffic, namespace, feature_psi=0.1)
    verdict = settled_verdict(cluster, limits(prometheus, maxFeaturePSI=0.25), candidate, stable)
    assert verdict.outcome == Outcome.PASSED, verdict
    assert "feature PSI vs training 0.100 ≤ maxFeaturePSI 0.250" in verdict.summary


def test_a_slow_candidate_fails_on_p99_latency(
    cluster: Cluster, prometheus: LocalPrometheus, traffic: TrafficExporter, namespace: str
) -> None:
    candidate, stable = variants(traffic, namespace, latency_s=0.2)
    verdict = settled_verdict(cluster, limits(prometheus), candidate, stable)
    assert (verdict.outcome, verdict.reason) == (Outcome.FAILED, "LatencyTooHigh"), verdict
    assert "> maxP99LatencyMs 50.0 ms" in verdict.summary


def test_a_query_from_the_spec_replaces_the_default(
    cluster: Cluster, prometheus: LocalPrometheus, traffic: TrafficExporter, namespace: str
) -> None:
    candidate, stable = variants(traffic, namespace)
    spec = limits(prometheus, queries={"samples": 'count(up{job="fraudops-test"}) * 3'})
    verdict = analyse(spec, candidate, stable)
    assert (verdict.outcome, verdict.reason) == (Outcome.INCONCLUSIVE, "InsufficientSamples")
    assert verdict.summary == "candidate made 3 decisions in 10s, fewer than minSamples 20"


def test_a_query_prometheus_rejects_is_reported_not_raised(
    cluster: Cluster, prometheus: LocalPrometheus, traffic: TrafficExporter, namespace: str
) -> None:
    candidate, stable = variants(traffic, namespace)
    verdict = analyse(limits(prometheus, queries={"errorRate": "sum(rate("}), candidate, stable)
    assert (verdict.outcome, verdict.reason) == (Outcome.INCONCLUSIVE, "MetricsUnavailable")
    assert "Prometheus rejected `sum(rate(`" in verdict.summary
