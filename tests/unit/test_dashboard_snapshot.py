"""The live dashboard's pure parts: time buckets as points, drift and rollout state from metrics text."""

from __future__ import annotations

from fraudops_dashboard.snapshot import drift_rows, metric_samples, rollout_rows, series_points

METRICS = """\
# HELP fraudops_feature_psi PSI of a feature against training.
# TYPE fraudops_feature_psi gauge
fraudops_feature_psi{source="stream",variant="stable",model_version="v1",feature="amount_log"} 0.31
fraudops_feature_psi{source="stream",variant="stable",model_version="v1",feature="hour_of_day"} 0.02
# HELP fraudops_rollout_phase Phase.
# TYPE fraudops_rollout_phase gauge
fraudops_rollout_phase{namespace="fraud",fraudmodel="card-fraud",phase="Stable"} 0
fraudops_rollout_phase{namespace="fraud",fraudmodel="card-fraud",phase="Analysing"} 1
# HELP fraudops_rollout_candidate_weight Weight.
# TYPE fraudops_rollout_candidate_weight gauge
fraudops_rollout_candidate_weight{namespace="fraud",fraudmodel="card-fraud"} 25
# HELP other_metric Not ours.
# TYPE other_metric gauge
other_metric 3
"""


def test_buckets_become_rates_per_second_and_a_fraud_share() -> None:
    points = series_points([(1000.0, 40, 10, 5, 1.25, 9.5), (1005.0, 0, 0, 0, None, None)], bucket_s=5)
    assert points[0].stream_per_s == 8.0 and points[0].api_per_s == 2.0
    assert points[0].fraud_rate == 0.1
    assert (points[0].p50_ms, points[0].p99_ms) == (1.25, 9.5)
    assert points[1].fraud_rate == 0.0 and points[1].p99_ms is None


def test_only_fraudops_samples_are_read() -> None:
    names = {name for name, _, _ in metric_samples([METRICS])}
    assert names == {"fraudops_feature_psi", "fraudops_rollout_phase", "fraudops_rollout_candidate_weight"}


def test_drift_is_listed_most_drifted_first() -> None:
    rows = drift_rows(metric_samples([METRICS]))
    assert [(row["feature"], row["psi"]) for row in rows] == [("amount_log", 0.31), ("hour_of_day", 0.02)]


def test_rollout_state_is_the_phase_set_to_one_and_the_weight() -> None:
    assert rollout_rows(metric_samples([METRICS])) == [
        {"namespace": "fraud", "fraudmodel": "card-fraud", "phase": "Analysing", "candidate_weight": 25.0}
    ]
