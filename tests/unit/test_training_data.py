"""Bring-your-own data: clear errors for data that cannot be trained on, and the column mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudops.errors import RejectedInputError
from fraudops_training.data import load_history, parse_column_mapping
from fraudops_training.evaluation import ThresholdRule, card_precision_at_k, choose_threshold


def write(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path


def history(rows: int = 2_000, frauds: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    labels = np.zeros(rows, dtype=int)
    labels[rng.choice(rows, frauds, replace=False)] = 1
    return pd.DataFrame(
        {
            "ts": pd.date_range("2026-08-01", periods=rows, freq="17min", tz="UTC").astype(str),
            "card": [f"k{i % 90}" for i in range(rows)],
            "amt": rng.lognormal(3, 1, rows).round(2),
            "label": labels,
        }
    )


MAPPING = "event_time=ts,card_id=card,amount=amt,is_fraud=label"


def test_the_mapping_renames_columns_and_a_card_can_be_the_entity(tmp_path: Path) -> None:
    frame, report = load_history(write(tmp_path, history()), parse_column_mapping(MAPPING))
    assert {"event_time", "customer_id", "amount", "is_fraud"} <= set(frame.columns)
    assert (frame["customer_id"] == frame["card_id"]).all()
    assert report.frauds == 60
    assert frame["event_time"].is_monotonic_increasing


def test_a_missing_required_column_is_named_with_the_columns_found(tmp_path: Path) -> None:
    with pytest.raises(
        RejectedInputError,
        match=r"required column\(s\) is_fraud not found in data.csv \(it has: ts, card, amt\)",
    ):
        load_history(
            write(tmp_path, history().drop(columns="label")),
            parse_column_mapping("event_time=ts,card_id=card,amount=amt"),
        )


def test_unparsable_timestamps_are_counted_and_the_first_one_shown(tmp_path: Path) -> None:
    frame = history()
    frame.loc[[5, 9], "ts"] = "last tuesday"
    with pytest.raises(RejectedInputError, match=r"2 row.* unparsable timestamps .*'last tuesday'") as error:
        load_history(write(tmp_path, frame), parse_column_mapping(MAPPING))
    assert error.value.field == "event_time"


def test_a_label_that_is_not_zero_or_one_is_refused(tmp_path: Path) -> None:
    frame = history()
    frame.loc[3, "label"] = 2
    with pytest.raises(RejectedInputError, match="labels must be 0 or 1; found 2"):
        load_history(write(tmp_path, frame), parse_column_mapping(MAPPING))


def test_too_few_frauds_to_train_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RejectedInputError, match="only 10 fraud label"):
        load_history(write(tmp_path, history(frauds=10)), parse_column_mapping(MAPPING))


def test_an_unknown_field_in_the_mapping_is_refused() -> None:
    with pytest.raises(RejectedInputError, match="unknown field 'amount_eur'"):
        parse_column_mapping("amount_eur=amt")


def test_the_cost_rule_picks_the_threshold_with_the_lowest_expected_cost() -> None:
    labels = np.array([0, 0, 0, 0, 1, 0, 1, 1])
    scores = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.8, 0.9])
    # missed fraud 100, false alert 1: catching all three frauds (threshold 0.4) costs one false alert
    assert choose_threshold(labels, scores, ThresholdRule("cost", 100, 1)) == pytest.approx(0.4)
    # false alerts dear (100), frauds cheap (1): only the two sure frauds, no false alert → cost 1
    assert choose_threshold(labels, scores, ThresholdRule("cost", 1, 100)) == pytest.approx(0.8)
    # the highest score is legitimate: flagging nothing at all (one missed fraud) is the cheapest
    assert choose_threshold(np.array([1, 0]), np.array([0.1, 0.9]), ThresholdRule("cost", 1, 100)) > 0.9


def test_the_precision_rule_keeps_the_lowest_threshold_reaching_the_target() -> None:
    labels = np.array([0, 0, 0, 1, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.8, 0.9])
    assert choose_threshold(
        labels, scores, ThresholdRule("precision", target_precision=0.99)
    ) == pytest.approx(0.8)


def test_card_precision_counts_each_card_once_per_day() -> None:
    days = pd.Series(["d1"] * 4 + ["d2"] * 2)
    cards = pd.Series(["a", "a", "b", "c", "a", "b"])
    labels = np.array([1, 1, 0, 0, 0, 1])
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.9, 0.2])
    # day 1: top-2 cards are a (fraud) and b → 1/2; day 2: a (legit) and b (fraud) → 1/2
    assert card_precision_at_k(days, cards, labels, scores, k=2) == pytest.approx(0.5)
