"""What individual features mean, on small hand-written histories (one behaviour per test)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from fraudops.errors import ConfigurationError
from fraudops.features.encode import encode_records
from fraudops.features.engine import FeatureEngine, PackedRows
from fraudops.features.spec import FEATURE_NAMES, N_FEATURES, Feature

T0 = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


def tx(minutes: float, **fields: object) -> dict[str, object]:
    record: dict[str, object] = {
        "transaction_id": f"tx-{minutes}-{fields.get('amount', 10)}",
        "event_time": (T0 + timedelta(minutes=minutes)).isoformat(),
        "customer_id": "alice",
        "amount": 10.0,
        "merchant_id": "m-bakery",
        "merchant_category": "grocery",
        "channel": "POS",
        "transaction_type": "PURCHASE",
        "device_id": "phone-1",
        "latitude": 52.52,
        "longitude": 13.40,
        "country": "DE",
    }
    record.update(fields)
    return record


def features(records: list[dict[str, object]], engine: FeatureEngine | None = None) -> pd.DataFrame:
    engine = engine or FeatureEngine()
    return pd.DataFrame(engine.transform(encode_records(records)), columns=FEATURE_NAMES)


def test_there_are_at_least_seventy_features_with_unique_names() -> None:
    assert N_FEATURES >= 70
    assert len(set(FEATURE_NAMES)) == N_FEATURES


def test_the_first_transaction_has_no_history() -> None:
    row = features([tx(0)]).iloc[0]
    assert row.is_first_transaction == 1
    assert row.count_24h == 0
    assert np.isnan(row.amount_zscore)
    assert row.new_merchant == 1
    assert row.new_device == 1


def test_velocity_counts_only_earlier_transactions_inside_each_window() -> None:
    history = [tx(0), tx(30), tx(55), tx(58)]  # minutes
    rows = features(history)
    last = rows.iloc[-1]
    assert last.count_10m == 1  # the one at 55
    assert last.count_1h == 3
    assert last.count_24h == 3
    assert last.sum_1h == pytest.approx(30.0)


def test_a_known_device_is_not_new_and_an_unknown_one_is() -> None:
    rows = features([tx(0), tx(60), tx(120, device_id="phone-2")])
    assert list(rows.new_device) == [1, 0, 1]
    assert rows.distinct_devices_7d.iloc[2] == 1


def test_amount_far_above_the_customers_history_has_a_large_zscore() -> None:
    history = [tx(i * 600, amount=20.0 + (i % 3)) for i in range(20)] + [tx(20 * 600, amount=900.0)]
    last = features(history).iloc[-1]
    assert last.amount_zscore > 5
    assert last.amount_to_max > 30
    assert last.amount_percentile == 1.0


def test_impossible_travel_is_flagged_when_the_implied_speed_exceeds_a_plane() -> None:
    rows = features([tx(0), tx(30, latitude=40.71, longitude=-74.0, country="US", is_international=True)])
    jump = rows.iloc[1]
    assert jump.km_from_last == pytest.approx(6385, rel=0.01)  # Berlin -> New York
    assert jump.implied_speed_kmh > 10_000
    assert jump.impossible_travel == 1
    assert jump.new_country == 1


def test_card_testing_declines_are_counted_and_the_follow_up_amount_compared() -> None:
    probes = [tx(i, amount=1.0, auth_result="DECLINED_INVALID_CARD") for i in range(4)]
    rows = features([*probes, tx(5, amount=800.0, auth_result="APPROVED")])
    last = rows.iloc[-1]
    assert last.declines_1h > 3.5
    assert last.small_amounts_1h > 3.5
    assert last.amount_to_last_declined == pytest.approx(800.0)
    assert last.is_declined == 0


def test_fan_in_then_fan_out_shows_in_payers_beneficiaries_and_pass_through() -> None:
    deposits = [
        tx(i * 10, transaction_type="DEPOSIT", beneficiary_id=f"payer-{i}", amount=500.0) for i in range(5)
    ]
    transfers = [
        tx(60 + i, transaction_type="TRANSFER", beneficiary_id=f"payee-{i}", amount=480.0) for i in range(3)
    ]
    last = features([*deposits, *transfers]).iloc[-1]
    assert last.distinct_payers_7d == 5
    assert last.distinct_beneficiaries_7d == 2
    assert last.new_beneficiary == 1
    # 1,440 out against 2,500 in, both decayed a little over the hour (tau = 24 h)
    assert last.pass_through_ratio_24h == pytest.approx(3 * 480.0 / 2501.0, rel=0.05)


def test_a_fraud_label_only_counts_after_it_became_known() -> None:
    engine = FeatureEngine()
    features([tx(0, merchant_id="m-shady", customer_id="bob")], engine)
    labelled = pd.DataFrame(
        [
            {
                **tx(0, merchant_id="m-shady", customer_id="bob"),
                "is_fraud": 1,
                "label_available_at": (T0 + timedelta(days=2)).isoformat(),
            }
        ]
    )
    from fraudops.features.engine import labels_from_history
    from fraudops.features.spec import FeatureConfig

    engine.add_fraud_labels(labels_from_history(labelled, FeatureConfig()))
    before = features([tx(60 * 24, merchant_id="m-shady", customer_id="carol")], engine).iloc[0]
    after = features([tx(60 * 24 * 3, merchant_id="m-shady", customer_id="dave")], engine).iloc[0]
    assert before.merchant_fraud_labels == 0
    assert after.merchant_fraud_labels == pytest.approx(np.exp(-1 / 30), rel=1e-4)


def test_anonymous_transactions_get_features_but_leave_no_state() -> None:
    engine = FeatureEngine()
    rows = features([tx(0, customer_id=None), tx(1, customer_id=None)], engine)
    assert list(rows.is_first_transaction) == [1, 1]
    assert engine.customer_count == 0


def test_exported_customers_imported_into_a_fresh_engine_give_exactly_the_same_future_features() -> None:
    history = [tx(i * 7, amount=5.0 + i) for i in range(40)]
    follow_up = [tx(400 + i, amount=50.0 + i, device_id="phone-9") for i in range(5)]
    original = FeatureEngine()
    features(history, original)
    restored = FeatureEngine()
    restored.import_customers(original.export_customers(["alice"]))
    assert np.array_equal(
        features(follow_up, original).to_numpy(), features(follow_up, restored).to_numpy(), equal_nan=True
    )


def test_packed_rows_are_the_exported_rows_compressed_chunk_by_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PackedRows, "CHUNK", 3)  # several chunks, the last one short
    engine = FeatureEngine()
    customers = [f"c{i}" for i in range(8)]
    features([tx(i * 3, customer_id=c, amount=5.0 + i) for i, c in enumerate(customers * 4)], engine)
    asked = [*customers[:5], "never-seen", *customers[5:]]
    packed = engine.export_packed(asked)
    assert len(packed) == 8
    assert list(packed) == engine.export_customers(asked)
    raw_bytes = sum(len(row) for _, row in engine.export_customers(asked))
    assert (
        sum(len(compressed) for _, compressed in packed._chunks) < raw_bytes / 4
    )  # state rows are mostly zeros


def test_a_customer_row_of_another_feature_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FeatureEngine()
    features([tx(0)], engine)
    rows = engine.export_customers(["alice"])
    monkeypatch.setattr("fraudops.features.engine._ROW_HEADER", b"FOPS" + bytes(12))
    with pytest.raises(ConfigurationError, match="rebuild the state"):
        FeatureEngine().import_customers(rows)


def test_feature_enum_matches_the_columns_written() -> None:
    row = features([tx(0, amount=123.0)]).iloc[0]
    assert row.iloc[Feature.AMOUNT] == pytest.approx(123.0)
    assert row.iloc[Feature.HOUR] == 12


def test_card_verifications_of_zero_amount_give_finite_features() -> None:
    # $0.00 authorisations (a card-testing signal) after a history of only $0.00 ones.
    rows = features([tx(i, amount=0.0) for i in range(3)] + [tx(5, amount=25.0)])
    assert np.isfinite(rows.amount_to_mean.iloc[1:]).all() and np.isfinite(rows.amount_to_max.iloc[1:]).all()
    assert rows.amount_to_mean.iloc[3] == pytest.approx(25.0 / 0.01)
    assert (rows.amount_is_small.iloc[:3] == 1).all()
