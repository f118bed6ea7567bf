"""The harder settings: imitation, label noise, late labels and drift, each visible in the output."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from fraudops_simulator import SimulationConfig, SimulationParameterError, simulate
from fraudops_simulator.difficulty import DIFFICULTIES, FALSE_CHARGEBACK
from fraudops_simulator.engine import plan_run


def config_of(difficulty: str) -> SimulationConfig:
    return SimulationConfig(
        transactions=60_000, fraud_rate=0.02, seed=8, start=date(2026, 3, 1), days=60, difficulty=difficulty
    )


REALISTIC, EASY = config_of("realistic"), config_of("easy")


def history(difficulty: str) -> pd.DataFrame:
    return pd.concat([table.to_pandas() for table in simulate(config_of(difficulty))], ignore_index=True)


@pytest.fixture(scope="module")
def easy() -> pd.DataFrame:
    return history("easy")


@pytest.fixture(scope="module")
def realistic() -> pd.DataFrame:
    return history("realistic")


def test_realistic_is_the_default_and_unknown_settings_are_refused() -> None:
    assert SimulationConfig().difficulty == "realistic"
    with pytest.raises(SimulationParameterError, match="easy, realistic, hard"):
        SimulationConfig(difficulty="nightmare")


def test_some_frauds_are_never_reported_and_keep_their_pattern_with_label_0(realistic: pd.DataFrame) -> None:
    true_frauds = realistic["fraud_pattern"].notna() & (realistic["fraud_pattern"] != FALSE_CHARGEBACK)
    unreported = true_frauds & (realistic["is_fraud"] == 0)
    share = unreported.sum() / true_frauds.sum()
    assert 0.01 < share < 0.2, share


def test_some_legit_rows_are_charged_back_as_fraud(realistic: pd.DataFrame, easy: pd.DataFrame) -> None:
    disputed = realistic["fraud_pattern"] == FALSE_CHARGEBACK
    assert disputed.sum() > 0 and (realistic.loc[disputed, "is_fraud"] == 1).all()
    assert (easy["fraud_pattern"] != FALSE_CHARGEBACK).all()


def test_some_labels_come_much_later_than_the_usual_delay(
    realistic: pd.DataFrame, easy: pd.DataFrame
) -> None:
    def delay_days(frame: pd.DataFrame) -> pd.Series:
        return (frame["label_available_at"] - frame["event_time"]).dt.total_seconds() / 86_400

    assert (delay_days(realistic) > 25).mean() > 5 * max((delay_days(easy) > 25).mean(), 1e-4)


def test_the_emerging_pattern_only_starts_in_the_second_half(
    realistic: pd.DataFrame, easy: pd.DataFrame
) -> None:
    pattern = DIFFICULTIES["realistic"].emerging_pattern
    rows = realistic[realistic["fraud_pattern"] == pattern]
    middle = realistic["event_time"].min() + pd.Timedelta(days=30)
    assert len(rows) > 0 and (rows["event_time"] >= middle).all()
    assert (easy["fraud_pattern"] != pattern).all()
    assert rows["terminal_id"].nunique() < len(rows) / 3, "a few rogue terminals carry many cards"


def test_imitating_fraud_spends_closer_to_the_victims_habits(
    realistic: pd.DataFrame, easy: pd.DataFrame
) -> None:
    def fraud_to_habit(frame: pd.DataFrame) -> float:
        median_by_customer = frame[frame["fraud_pattern"].isna()].groupby("customer_id")["amount"].median()
        frauds = frame[frame["fraud_pattern"].notna() & (frame["fraud_pattern"] != FALSE_CHARGEBACK)]
        ratio = np.log(frauds["amount"] / frauds["customer_id"].map(median_by_customer))
        return float(np.nanmedian(np.abs(ratio)))

    assert fraud_to_habit(realistic) < 0.9 * fraud_to_habit(easy)


def test_volume_grows_over_the_months(realistic: pd.DataFrame) -> None:
    days = (realistic["event_time"] - realistic["event_time"].min()).dt.days
    assert (days >= 45).sum() > 1.1 * (days < 15).sum()


def test_merchants_turn_over_new_ids_appear_mid_history_and_take_the_old_ones_place(
    realistic: pd.DataFrame, easy: pd.DataFrame
) -> None:
    world = plan_run(REALISTIC).world
    start, end = realistic["event_time"].min(), realistic["event_time"].max()
    for column, prefix, count in (
        ("merchant_id", "M", world.merchants.n),
        ("terminal_id", "T", world.n_terminals),
    ):
        present = realistic[realistic[column].notna()]
        seen = present.groupby(column)["event_time"].agg(["min", "max"])
        number = seen.index.str.removeprefix(prefix).astype(int).to_numpy()
        successors = seen[number >= count]
        # new ids, first seen between a fifth and nine tenths of the history
        assert len(successors) > 0.05 * (number < count).sum(), column
        assert (successors["min"] > start + (end - start) * 0.19).all(), column
        # each takes its predecessor's place: the old id is not seen once the new one is
        width = len(seen.index[0]) - len(prefix)
        for successor, n in zip(successors.index, number[number >= count], strict=True):
            predecessor = f"{prefix}{n - count:0{width}d}"
            if predecessor in seen.index:
                assert seen.loc[predecessor, "max"] <= seen.loc[successor, "min"], (predecessor, successor)
    easy_numbers = easy["merchant_id"].dropna().str.removeprefix("M").astype(int)
    assert easy_numbers.max() < plan_run(EASY).world.merchants.n, "easy has no turnover"
