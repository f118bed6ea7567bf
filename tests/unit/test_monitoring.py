"""Model monitoring metrics: bulk histogram updates equal value-by-value ones; drift gauges per feature."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

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
    monitor = monitoring.VariantMonitor("test", "canary", "v-mon", False, reference, ["hour", "amount"])
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


def test_a_scrape_sees_the_drift_of_rows_observed_just_after_the_last_one() -> None:
    # make test-live: the 4,000 rows of a drift came in one burst within a second of the PSI's last
    # publication, which happened as batches came; with no traffic after them it was never published again.
    rng = np.random.default_rng(4)
    names = ["amount", "hour"]

    def rows(count: int, amount_scale: float = 1.0) -> np.ndarray:
        return np.column_stack([rng.lognormal(3, 1, count) * amount_scale, rng.integers(0, 24, count)])

    monitor = monitoring.VariantMonitor(
        "test", "stable", "v-burst", False, build_reference(rows(20_000), names)
    )
    labels = {"source": "test", "variant": "stable", "model_version": "v-burst", "feature": "amount"}
    monitor.observe(rng.random(1000), features=rows(1000))
    before = REGISTRY.get_sample_value("fraudops_feature_psi", labels)

    for _ in range(20):  # a consumer's batches, right after one another
        monitor.observe(rng.random(200), features=rows(200, amount_scale=3.0))
    after = REGISTRY.get_sample_value("fraudops_feature_psi", labels)

    assert before is not None and before < 0.1
    assert after is not None and after > 0.25


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


def _one_row_monitor(version: str) -> monitoring.VariantMonitor:
    rng = np.random.default_rng(2)
    reference = build_reference(
        np.column_stack([rng.lognormal(3, 1, 5000), rng.integers(0, 24, 5000)]), ["a", "h"]
    )
    return monitoring.VariantMonitor("test", "stable", version, False, reference, ["a", "h"])


def test_a_scrape_right_after_one_observation_sees_it() -> None:
    monitor = _one_row_monitor("v-scrape")

    monitor.observe(np.array([0.93], dtype=np.float32), alerts=1, features=np.array([[20.0, 3.0]]))
    scraped = {
        (sample.name, sample.labels.get("le")): sample.value
        for family in text_string_to_metric_families(generate_latest(REGISTRY).decode())
        for sample in family.samples
        if sample.labels.get("model_version") == "v-scrape"
    }

    assert scraped[("fraudops_score_count", None)] == 1
    assert scraped[("fraudops_score_bucket", "0.9")] == 0
    assert scraped[("fraudops_score_bucket", "0.99")] == 1
    assert scraped[("fraudops_alerts_total", None)] == 1


def test_one_row_observations_are_folded_into_the_histograms_in_groups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monitor = _one_row_monitor("v-groups")
    folds = []
    real = monitoring.observe_many
    monkeypatch.setattr(
        monitoring, "observe_many", lambda h, values: (folds.append(len(values)), real(h, values))
    )

    for _ in range(2 * monitoring.FOLD_ROWS):
        monitor.observe(np.array([0.5], dtype=np.float32), features=np.array([[20.0, 3.0]]))

    assert folds == [monitoring.FOLD_ROWS, monitoring.FOLD_ROWS]
    labels = {"source": "test", "variant": "stable", "model_version": "v-groups", "shadow": "false"}
    assert REGISTRY.get_sample_value("fraudops_score_count", labels) == 2 * monitoring.FOLD_ROWS
