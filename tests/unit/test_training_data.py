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


def test_unparsable_timestamps_are_dropped_counted_and_the_first_one_named(tmp_path: Path) -> None:
    frame = history()
    frame.loc[[5, 9], "ts"] = "last tuesday"
    loaded, report = load_history(write(tmp_path, frame), parse_column_mapping(MAPPING))
    assert len(loaded) == 1_998 and report.rows_read == 2_000
    [dropped] = report.dropped
    assert dropped.count == 2 and "event_time could not be parsed" in dropped.reason
    assert dropped.examples[0] == "row 6: event_time='last tuesday'"


def test_a_label_that_is_not_zero_or_one_drops_its_row(tmp_path: Path) -> None:
    frame = history()
    frame.loc[3, "label"] = 2
    loaded, report = load_history(write(tmp_path, frame), parse_column_mapping(MAPPING))
    assert len(loaded) == 1_999
    assert (
        "is_fraud label is not 0 or 1" in report.dropped[0].reason
        and "is_fraud=2" in report.dropped[0].examples[0]
    )


def test_more_unusable_rows_than_allowed_refuse_the_file_naming_each_reason(tmp_path: Path) -> None:
    frame = history()
    frame.loc[:30, "ts"] = "soon"
    frame.loc[40:45, "amt"] = -5.0
    with pytest.raises(
        RejectedInputError,
        match=r"37 of 2,000 rows .* more than the allowed 1.00%.*event_time"
        r".*amount is missing, negative",
    ):
        load_history(write(tmp_path, frame), parse_column_mapping(MAPPING))
    loaded, report = load_history(
        write(tmp_path, frame), parse_column_mapping(MAPPING), max_dropped_share=0.05
    )
    assert len(loaded) == 2_000 - 37 and sum(d.count for d in report.dropped) == 37


def test_zero_amounts_are_accepted(tmp_path: Path) -> None:
    frame = history()
    frame.loc[[1, 2, 3], "amt"] = 0.0
    loaded, report = load_history(write(tmp_path, frame), parse_column_mapping(MAPPING))
    assert len(loaded) == 2_000 and not report.dropped
    assert (loaded["amount"] == 0.0).sum() == 3


def test_numeric_ids_stay_numeric_and_string_ids_stay_strings(tmp_path: Path) -> None:
    frame = history().assign(tx=np.arange(2_000) + 10_000_000)
    loaded, _ = load_history(write(tmp_path, frame), parse_column_mapping(MAPPING + ",transaction_id=tx"))
    assert (
        pd.api.types.is_integer_dtype(loaded["transaction_id"])
        and loaded["transaction_id"].min() == 10_000_000
    )
    named = history().assign(tx=[f"t{i}" for i in range(2_000)])
    loaded, _ = load_history(write(tmp_path, named), parse_column_mapping(MAPPING + ",transaction_id=tx"))
    assert set(loaded["transaction_id"].astype(str)) == {f"t{i}" for i in range(2_000)}


def test_time_zone_offsets_are_honoured_and_naive_times_are_utc(tmp_path: Path) -> None:
    frame = history()
    frame["ts"] = "2026-08-01T12:00:00"
    frame.loc[0, "ts"] = "2026-08-01T12:00:00+02:00"
    loaded, _ = load_history(write(tmp_path, frame), parse_column_mapping(MAPPING))
    assert loaded["event_time"].iloc[0] == pd.Timestamp("2026-08-01T10:00:00Z")
    assert (loaded["event_time"].iloc[1:] == pd.Timestamp("2026-08-01T12:00:00Z")).all()


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


def test_zero_amounts_are_trained_on_and_amounts_are_taken_in_cents(tmp_path: Path) -> None:
    frame = history()
    frame.loc[[4, 8], "amt"] = 0.0  # card verifications
    frame.loc[12, "amt"] = 12.345
    loaded, _ = load_history(write(tmp_path, frame), parse_column_mapping(MAPPING))
    assert (loaded["amount"] == 0).sum() == 2
    assert 12.35 in set(loaded["amount"]) or 12.34 in set(loaded["amount"])
    assert (np.rint(loaded["amount"] * 100) / 100 == loaded["amount"]).all()


def test_a_negative_amount_drops_its_row_saying_how_to_send_a_refund(tmp_path: Path) -> None:
    # Training data is loaded robustly (unusable rows dropped, counted and named); the reason for a
    # negative amount says how the platform takes a refund, as the stream and the gateway do.
    frame = history()
    frame.loc[7, "amt"] = -3.0
    loaded, report = load_history(write(tmp_path, frame), parse_column_mapping(MAPPING))
    assert len(loaded) == len(frame) - 1
    [dropped] = report.dropped
    assert dropped.count == 1 and "REFUND with a positive amount" in dropped.reason
    assert dropped.examples[0] == "row 8: amount=-3.0"
