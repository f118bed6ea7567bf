"""Generalization checks: calendar proxies are caught, our features are not clocks, breakdowns add up."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from fraudops.features.engine import FeatureEngine
from fraudops.features.spec import FEATURE_NAMES
from fraudops_simulator import SimulationConfig, simulate
from fraudops_training.generalization import by_month, by_tenure, calendar_proxies, period_separability
from fraudops_training.windows import WindowBounds, split_windows


@pytest.fixture(scope="module")
def replayed() -> tuple[pd.DataFrame, np.ndarray]:
    config = SimulationConfig(transactions=40_000, customers=800, days=90, seed=13, start=date(2026, 2, 1))
    frame = pd.concat([t.to_pandas() for t in simulate(config)], ignore_index=True)
    frame = frame.sort_values(["event_time", "transaction_id"], kind="stable").reset_index(drop=True)
    return frame, FeatureEngine(entity_table=True).replay(frame)


def test_a_planted_clock_with_importance_is_flagged_and_a_behaviour_feature_is_not() -> None:
    rng = np.random.default_rng(1)
    train = np.column_stack([rng.uniform(0, 50, 5_000), rng.lognormal(3, 1, 5_000)])
    test = np.column_stack([rng.uniform(60, 70, 2_000), rng.lognormal(3, 1, 2_000)])
    table = calendar_proxies(
        ["days_since_start", "amount"], train, test, pd.Series({"days_since_start": 5.0, "amount": 5.0})
    )
    flagged = dict(zip(table["feature"], table["flagged"], strict=True))
    assert flagged == {"days_since_start": True, "amount": False}


def test_an_unimportant_clock_is_reported_but_not_flagged() -> None:
    train, test = np.arange(1_000.0)[:, None], (np.arange(1_000.0) + 5_000)[:, None]
    table = calendar_proxies(["clock"], train, test, pd.Series({"clock": 0.01, "other": 0.99}))
    assert table.loc[0, "period_separability"] == pytest.approx(1.0) and not table.loc[0, "flagged"]


def test_none_of_our_features_tells_the_training_period_from_a_later_one(
    replayed: tuple[pd.DataFrame, np.ndarray],
) -> None:
    """Train on one period (after the burn-in), evaluate on a later one: no feature may be a clock.

    The uncapped "days since first seen" that feature version 1 used as account age is the control:
    computed from the same rows it separates the periods, so the check can fail.
    """
    frame, features = replayed
    windows = split_windows(frame["event_time"], WindowBounds(label_delay_days=7))
    separability = {
        name: period_separability(features[windows.train, j], features[windows.test, j])
        for j, name in enumerate(FEATURE_NAMES)
    }
    clocks = {name: round(value, 2) for name, value in separability.items() if value >= 0.6}
    assert not clocks, f"features that separate the periods by themselves: {clocks}"
    first_seen = frame.groupby("customer_id")["event_time"].transform("min")
    uncapped = ((frame["event_time"] - first_seen).dt.total_seconds() / 86_400).to_numpy()
    assert period_separability(uncapped[windows.train], uncapped[windows.test]) >= 0.6


def test_breakdowns_by_month_and_tenure_count_every_held_out_row() -> None:
    times = pd.Series(pd.date_range("2026-01-20", periods=400, freq="3h", tz="UTC"))
    labels = np.tile([0, 0, 0, 1], 100)
    scores = labels * 0.5 + np.linspace(0, 0.4, 400)
    months = by_month(times, labels, scores)
    assert list(months.index) == ["2026-01", "2026-02", "2026-03"] and months["transactions"].sum() == 400
    weeks = by_month(times, labels, scores, "%G-W%V")
    assert len(weeks) == 8 and weeks["transactions"].sum() == 400
    tenure = by_tenure(np.linspace(0, 200, 400), labels, scores)
    assert tenure["transactions"].sum() == 400 and tenure.index[0] == "0–7 d"
