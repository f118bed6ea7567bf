"""The simulator's output contract: columns, order, labels, counts and schema validity."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from fraudops.schema import LABEL_COLUMNS, TRANSACTION_FIELDS, Transaction
from fraudops_simulator import PATTERN_NAMES, SimulationConfig, simulate
from fraudops_simulator.difficulty import HARDER_PATTERNS

# A past start keeps every event time valid for the schema whatever today's date is.
MODEST = SimulationConfig(
    transactions=30_000, fraud_rate=0.02, seed=11, start=date(2026, 3, 1), days=60, difficulty="easy"
)  # truthful labels: the harder settings are tested apart


def run(config: SimulationConfig) -> pd.DataFrame:
    return pa.concat_tables(list(simulate(config))).to_pandas()


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return run(MODEST)


def test_columns_are_the_transaction_fields_then_the_labels(history: pd.DataFrame) -> None:
    assert tuple(history.columns) == TRANSACTION_FIELDS + LABEL_COLUMNS


def test_requested_number_of_transactions_is_produced_exactly(history: pd.DataFrame) -> None:
    assert len(history) == MODEST.transactions


def test_every_pattern_appears_in_a_modest_simulation(history: pd.DataFrame) -> None:
    seen = set(history["fraud_pattern"].dropna())
    assert len(seen) >= 15
    assert seen == set(PATTERN_NAMES) - set(HARDER_PATTERNS)


@pytest.mark.parametrize("fraud_rate", [0.004, 0.008, 0.03])
def test_fraud_share_is_close_to_the_configured_rate(fraud_rate: float) -> None:
    config = SimulationConfig(
        transactions=20_000, fraud_rate=fraud_rate, seed=3, start=date(2026, 3, 1), difficulty="easy"
    )
    history = run(config)
    assert history["is_fraud"].mean() == pytest.approx(fraud_rate, rel=0.1)


def test_rows_are_sorted_by_event_time(history: pd.DataFrame) -> None:
    assert history["event_time"].is_monotonic_increasing


def test_transaction_ids_are_unique(history: pd.DataFrame) -> None:
    assert history["transaction_id"].is_unique


def test_fraud_rows_name_their_pattern_and_legit_rows_do_not(history: pd.DataFrame) -> None:
    fraud = history["is_fraud"] == 1
    assert set(history["is_fraud"].unique()) == {0, 1}
    assert history.loc[fraud, "fraud_pattern"].notna().all()
    assert history.loc[~fraud, "fraud_pattern"].isna().all()


def test_labels_become_available_after_the_event(history: pd.DataFrame) -> None:
    delay_days = (history["label_available_at"] - history["event_time"]).dt.total_seconds() / 86_400
    assert (delay_days >= 1.0).all()
    assert (delay_days <= 60.0 + 7.0).all()  # fraud waits for the end of its episode (days at most)
    assert delay_days.mean() == pytest.approx(MODEST.label_delay_days, rel=0.15)


def test_amounts_are_positive_and_rounded_to_cents(history: pd.DataFrame) -> None:
    cents = history["amount"] * 100
    assert (history["amount"] > 0).all()
    assert np.allclose(cents, cents.round(), atol=1e-6)


def test_timestamps_are_utc(history: pd.DataFrame) -> None:
    for column in ("event_time", "credential_change_at", "account_opened_at", "label_available_at"):
        assert str(history[column].dt.tz) == "UTC"


def test_sampled_rows_of_every_pattern_validate_as_transactions(history: pd.DataFrame) -> None:
    frauds = history[history["is_fraud"] == 1].groupby("fraud_pattern").head(40)
    legit = history[history["is_fraud"] == 0].sample(2_000, random_state=1)
    sample = pd.concat([frauds, legit])
    records = (
        sample[list(TRANSACTION_FIELDS)].astype(object).where(sample[list(TRANSACTION_FIELDS)].notna(), None)
    )
    for record in records.to_dict("records"):
        transaction = Transaction.model_validate(record)
        assert transaction.amount == record["amount"]
    assert set(frauds["fraud_pattern"]) == set(PATTERN_NAMES) - set(HARDER_PATTERNS)


def test_customers_mostly_live_in_the_issuing_country_and_some_abroad(history: pd.DataFrame) -> None:
    card_present = history[history["channel"].isin(["POS", "ATM"])]
    home_country = card_present.groupby("customer_id")["country"].agg(lambda s: s.mode().iloc[0])
    share_de = (home_country == "DE").mean()
    assert 0.8 < share_de < 0.99


def test_a_world_too_small_for_any_trip_still_simulates() -> None:
    """33 customers over 10 days plan no trip: placing rows and settling journeys indexed an empty trip
    table (IndexError) before `of_trip`."""
    config = SimulationConfig(transactions=1000, customers=33, days=10, seed=3, fraud_rate=0.05)
    frame = run(config)
    assert len(frame) == 1000
    assert frame["customer_id"].nunique() <= 33
