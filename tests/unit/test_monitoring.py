"""Model monitoring metrics: bulk histogram updates equal value-by-value ones; drift gauges per feature."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Histogram

from fraudops import monitoring
from fraudops.drift import build_reference
from fraudops.feedback_quality import CohortQuality


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for m in registry.collect()
        for s in m.samples
        if not s.name.endswith("_created")
    }


def test_bulk_observations_count_exactly_like_one_by_one() -> None:
    values = np.concatenate([np.random.default_rng(3).random(500), [0.0, 0.01, 0.2, 0.99, 1.0]])
    one, bulk = CollectorRegistry(), CollectorRegistry()
    by_one = Histogram("h", "h", buckets=monitoring.SCORE_BUCKETS, registry=one)
    for value in values:
        by_one.observe(value)
    monitoring.observe_many(Histogram("h", "h", buckets=monitoring.SCORE_BUCKETS, registry=bulk), values)
    expected, got = samples(one), samples(bulk)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key


def test_a_variant_monitor_publishes_scores_alerts_and_the_drift_of_each_feature() -> None:
    rng = np.random.default_rng(1)
    names = ["amount", "hour"]
    reference = build_reference(
        np.column_stack([rng.lognormal(3, 1, 20_000), rng.integers(0, 24, 20_000)]), names
    )
    monitor = monitoring.VariantMonitor(
        "test", "canary", "v-mon", False, reference, ["hour", "amount"], publish_every_s=0
    )
    shifted = np.column_stack([rng.integers(0, 24, 2000), rng.lognormal(3, 1, 2000) * 4])  # model's order

    monitor.observe(rng.random(2000), alerts=7, features=shifted)

    def value(name: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(name, labels)

    assert (
        value("fraudops_score_count", source="test", variant="canary", model_version="v-mon", shadow="false")
        == 2000
    )
    assert value("fraudops_alerts_total", source="test", variant="canary", model_version="v-mon") == 7
    amount = value(
        "fraudops_feature_psi", source="test", variant="canary", model_version="v-mon", feature="amount"
    )
    hour = value(
        "fraudops_feature_psi", source="test", variant="canary", model_version="v-mon", feature="hour"
    )
    assert amount is not None and amount > 0.25
    assert hour is not None and hour < 0.05


def test_a_reference_naming_unknown_features_is_refused() -> None:
    reference = build_reference(np.random.default_rng(1).random((100, 1)), ["not_a_feature"])
    with pytest.raises(ValueError, match="not_a_feature"):
        monitoring.VariantMonitor("test", "stable", "v-x", False, reference, ["amount"])


def test_a_new_cohort_removes_the_quality_of_versions_it_no_longer_holds() -> None:
    def quality(version: str, variant: str) -> CohortQuality:
        return CohortQuality(version, variant, decisions=100, flagged=10, fraud=8, caught=6, labelled=90)

    monitoring.publish_cohort_qualities([quality("cohort-v1", "stable"), quality("cohort-v2", "canary")])
    canary = {"model_version": "cohort-v2", "variant": "canary"}
    assert REGISTRY.get_sample_value("fraudops_feedback_cohort_precision", canary) == pytest.approx(0.6)

    monitoring.publish_cohort_qualities([quality("cohort-v1", "stable")])  # the canary was rolled back

    for name in ("fraudops_feedback_cohort_precision", "fraudops_feedback_cohort_recall"):
        assert REGISTRY.get_sample_value(name, canary) is None
        assert (
            REGISTRY.get_sample_value(name, {"model_version": "cohort-v1", "variant": "stable"}) is not None
        )
    for labelled in ("true", "false"):
        assert (
            REGISTRY.get_sample_value("fraudops_feedback_cohort_decisions", {**canary, "labelled": labelled})
            is None
        )
    assert (
        REGISTRY.get_sample_value(
            "fraudops_feedback_cohort_decisions",
            {"model_version": "cohort-v1", "variant": "stable", "labelled": "true"},
        )
        == 90
    )
