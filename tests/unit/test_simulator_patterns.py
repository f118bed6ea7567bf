"""Each fraud pattern leaves the signature its documentation promises, and legit traffic stays plausible."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from fraudops_simulator import SimulationConfig, simulate
from fraudops_simulator.geography import haversine_km

TWO_DAYS = pd.Timedelta(days=2)
CONFIG = SimulationConfig(
    transactions=60_000, fraud_rate=0.03, seed=5, start=date(2026, 3, 1), days=60, difficulty="easy"
)  # the patterns as written: truthful labels


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    frame = pa.concat_tables(list(simulate(CONFIG))).to_pandas()
    return frame.reset_index(drop=True)


def of(history: pd.DataFrame, pattern: str) -> pd.DataFrame:
    rows = history[history["fraud_pattern"] == pattern]
    assert len(rows) > 0, f"no {pattern} rows"
    return rows


def episodes(rows: pd.DataFrame, key: str, gap: pd.Timedelta = TWO_DAYS) -> list[pd.DataFrame]:
    """Rows of one pattern split into episodes: per key, a new episode after a quiet gap."""
    found = []
    for _, group in rows.groupby(key):
        starts = group["event_time"].diff() > gap
        found.extend(part for _, part in group.groupby(starts.cumsum()))
    return found


def speed_from_previous_kmh(rows: pd.DataFrame) -> pd.Series:
    """Implied speed from the previous located row of the same card (rows in event-time order)."""
    located = rows[rows["latitude"].notna() & rows["card_id"].notna()]
    previous = located.groupby("card_id")[["event_time", "latitude", "longitude"]].shift(1)
    km = haversine_km(previous["latitude"], previous["longitude"], located["latitude"], located["longitude"])
    hours = (located["event_time"] - previous["event_time"]).dt.total_seconds() / 3600
    return pd.Series(km / np.maximum(hours, 1 / 3600), index=located.index)


def test_impossible_travel_implies_more_than_1000_kmh_from_the_cards_previous_transaction(
    history: pd.DataFrame,
) -> None:
    rows = of(history, "impossible_travel")
    speed = speed_from_previous_kmh(history)
    previous_pattern = history.groupby("card_id")["fraud_pattern"].shift(1)
    first_of_episode = rows.index[previous_pattern.loc[rows.index] != "impossible_travel"]
    assert len(first_of_episode) > 0
    assert (speed.loc[first_of_episode] > 1000).all()


def test_legit_card_present_transactions_never_travel_faster_than_a_plane(history: pd.DataFrame) -> None:
    card_present = history[history["channel"].isin(["POS", "ATM"])]
    speed = speed_from_previous_kmh(card_present)
    previous_fraud = card_present.groupby("card_id")["is_fraud"].shift(1)
    both_legit = (card_present["is_fraud"] == 0) & (previous_fraud == 0)
    assert (speed[both_legit].dropna() < 1000).all()


def test_card_testing_starts_with_declined_micro_amounts_and_ends_with_a_larger_purchase(
    history: pd.DataFrame,
) -> None:
    for card in episodes(of(history, "card_testing"), "card_id", gap=pd.Timedelta(days=3)):
        declined = card["auth_result"] != "APPROVED"
        assert declined.any()
        first_decline = card.index[declined.to_numpy()][0]
        tests = card.loc[:first_decline]
        assert (tests["amount"] <= 3.0).all()
        assert card.loc[first_decline:, "amount"].max() > 100


def test_compromised_terminal_cards_used_the_skimmed_terminal_before_their_fraud(
    history: pd.DataFrame,
) -> None:
    frauds = of(history, "compromised_terminal")
    first_fraud = frauds.groupby("card_id")["event_time"].min()
    earlier = history[history["card_id"].isin(first_fraud.index) & history["terminal_id"].notna()]
    earlier = earlier[
        (earlier["event_time"] < earlier["card_id"].map(first_fraud)) & (earlier["is_fraud"] == 0)
    ]
    victims_per_terminal = earlier.groupby("terminal_id")["card_id"].nunique()
    skimmers = set(victims_per_terminal[victims_per_terminal >= 2].index)
    for card in first_fraud.index:
        assert skimmers & set(earlier.loc[earlier["card_id"] == card, "terminal_id"]), (
            f"{card} met no skimmer"
        )
    at_skimmers = history[history["terminal_id"].isin(skimmers)]
    assert at_skimmers["is_fraud"].mean() < 0.05  # the skimmed terminal's own traffic was genuine


def test_account_takeover_transfers_come_from_a_new_device_soon_after_a_credential_change(
    history: pd.DataFrame,
) -> None:
    rows = of(history, "account_takeover")
    assert (rows["transaction_type"] == "TRANSFER").all()
    assert rows["beneficiary_id"].notna().all()
    since_change = rows["event_time"] - rows["credential_change_at"]
    assert (since_change >= pd.Timedelta(0)).all() and (since_change < pd.Timedelta(days=1)).all()
    for _, row in rows.iterrows():
        before = history[
            (history["customer_id"] == row["customer_id"])
            & (history["event_time"] < row["credential_change_at"])
        ]
        assert row["device_id"] not in set(before["device_id"].dropna())


def test_overdraft_probing_steps_down_through_insufficient_funds_declines(history: pd.DataFrame) -> None:
    for episode in episodes(of(history, "overdraft_probing"), "card_id", gap=pd.Timedelta(hours=2)):
        assert (episode["auth_result"] == "DECLINED_INSUFFICIENT_FUNDS").sum() >= 2
        assert (np.diff(episode["amount"].to_numpy()) < 0).all()


def test_money_mules_receive_from_several_payers_before_paying_out(history: pd.DataFrame) -> None:
    for episode in episodes(of(history, "money_mule_layering"), "account_id"):
        inbound = episode[episode["transaction_type"] == "DEPOSIT"]
        outbound = episode[episode["transaction_type"] != "DEPOSIT"]
        assert inbound["beneficiary_id"].nunique() >= 2
        assert len(outbound) >= 2
        assert outbound["event_time"].min() > inbound["event_time"].max()
        assert outbound["amount"].sum() <= inbound["amount"].sum()


def test_app_scam_payments_come_from_the_customers_own_device(history: pd.DataFrame) -> None:
    rows = of(history, "app_scam")
    assert (rows["transaction_type"] == "TRANSFER").all()
    own = 0
    for _, row in rows.iterrows():
        before = history[
            (history["customer_id"] == row["customer_id"])
            & (history["event_time"] < row["event_time"])
            & (history["is_fraud"] == 0)
        ]
        own += row["device_id"] in set(before["device_id"].dropna())
    assert own / len(rows) > 0.7  # the rest belong to customers with no app history yet


def test_new_account_fraud_happens_in_the_first_days_of_an_account(history: pd.DataFrame) -> None:
    rows = of(history, "new_account_fraud")
    age = rows["event_time"] - rows["account_opened_at"]
    assert (age < pd.Timedelta(days=12)).all()


def test_late_night_fraud_happens_between_one_and_five_local_time(history: pd.DataFrame) -> None:
    rows = of(history, "late_night_fraud")
    assert rows["hour_of_day"].between(1, 5).all()


def test_burst_fraud_packs_many_purchases_into_minutes(history: pd.DataFrame) -> None:
    for card in episodes(of(history, "burst_fraud"), "card_id", gap=pd.Timedelta(hours=3)):
        assert len(card) >= 5
        assert card["event_time"].max() - card["event_time"].min() < pd.Timedelta(hours=2)


def test_high_risk_merchant_fraud_uses_high_risk_categories(history: pd.DataFrame) -> None:
    rows = of(history, "high_risk_merchant")
    assert rows["merchant_category"].isin(["gambling", "gift_cards", "crypto", "money_transfer"]).all()


def test_unexpected_international_fraud_is_abroad(history: pd.DataFrame) -> None:
    rows = of(history, "unexpected_international")
    assert rows["is_international"].all()


def test_cnp_credential_leak_is_card_not_present_on_the_web(history: pd.DataFrame) -> None:
    rows = of(history, "cnp_credential_leak")
    assert (rows["channel"] == "WEB").all()
    assert rows["terminal_id"].isna().all() and rows["device_id"].notna().all()


def test_shared_device_fraud_uses_one_device_on_several_accounts(history: pd.DataFrame) -> None:
    accounts_per_device = of(history, "shared_device").groupby("device_id")["customer_id"].nunique()
    assert accounts_per_device.max() >= 3


def test_amount_anomaly_is_far_above_the_customers_usual_amounts(history: pd.DataFrame) -> None:
    rows = of(history, "amount_anomaly")
    legit = history[history["is_fraud"] == 0]
    usual = legit.groupby("customer_id")["amount"].median()
    ratio = rows["amount"] / rows["customer_id"].map(usual)
    assert ratio.median() > 5


def test_legit_look_alikes_exist_for_the_strongest_signals(history: pd.DataFrame) -> None:
    legit = history[history["is_fraud"] == 0]
    assert (legit["hour_of_day"].between(1, 4)).sum() > 0  # night owls
    assert legit["merchant_category"].isin(["gambling", "crypto"]).sum() > 0  # habits
    assert (legit["is_international"]).mean() > 0.03  # travel, foreign web shops, cross-border residents
    assert (legit["auth_result"] == "DECLINED_INSUFFICIENT_FUNDS").sum() > 0
