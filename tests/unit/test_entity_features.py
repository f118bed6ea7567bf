"""The entity table's features, one behaviour each, on small hand-written histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from fraudops.features import layout as L
from fraudops.features.encode import encode_records, stable_hash
from fraudops.features.engine import FeatureEngine, LabelEvents
from fraudops.features.entities import EntityTable
from fraudops.features.spec import FEATURE_NAMES, FeatureConfig

T0 = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


def tx(seconds: float, customer: str = "alice", terminal: str = "t-1", **fields: object) -> dict[str, object]:
    return {
        "transaction_id": f"tx-{customer}-{seconds}",
        "event_time": (T0 + timedelta(seconds=seconds)).isoformat(),
        "customer_id": customer,
        "terminal_id": terminal,
        "amount": 10.0,
        **fields,
    }


def run(records: list[dict[str, object]], engine: FeatureEngine | None = None) -> pd.DataFrame:
    engine = engine or FeatureEngine(entity_table=True)
    return pd.DataFrame(engine.transform(encode_records(records)), columns=FEATURE_NAMES)


def fraud_label(known: datetime, happened: datetime, terminal: str = "t-1") -> LabelEvents:
    keys = np.zeros((1, len(L.RISK_TABLES)), dtype=np.int64)
    keys[0, 1] = stable_hash(np.asarray([terminal], dtype=object))[0]
    return LabelEvents(
        np.asarray([known.timestamp()]),
        np.asarray(["bob"], dtype=object),
        keys,
        np.asarray([happened.timestamp()]),
    )


@pytest.mark.parametrize("lag", [0, 1, 2])
def test_a_transaction_sees_the_table_as_of_the_start_of_the_epoch_lag_epochs_before_its_own(
    lag: int,
) -> None:
    # epoch 60 s: two transactions in one minute, then one in each of the next three minutes. A
    # transaction reads the table as of the start of epoch (own - lag): the first two appear for the
    # transactions of minute lag + 1 and later, never in the same minute.
    engine = FeatureEngine(FeatureConfig(entity_lag_epochs=lag), entity_table=True)
    start = 60 - T0.timestamp() % 60  # the start of the next minute
    minutes = [start + 60 * m + 1 for m in (1, 2, 3)]
    features = run(
        [tx(start + 1), tx(start + 30, customer="bob")] + [tx(t, customer=f"c{t}") for t in minutes], engine
    )
    seen = features["terminal_tx_1d"].tolist()
    assert seen[:2] == [0.0, 0.0]
    for m, value in enumerate(seen[2:], start=1):
        # minute m reads epoch m - lag: it sees the first minute's two and the m - lag - 1 minutes after it
        expected = 0 if m - lag < 1 else 2 + (m - lag - 1)
        assert value == pytest.approx(expected, rel=3e-3), f"minute {m}, lag {lag}"  # decayed by minutes
    if lag == 0:
        assert features["terminal_customers_7d"].iloc[2] == pytest.approx(2.0, abs=0.1)


def test_artifacts_from_before_the_entity_lag_read_with_none_and_new_ones_with_one_epoch() -> None:
    assert FeatureConfig.from_dict({"label_delay_s": 86400.0, "entity_epoch_s": 60.0}).entity_lag_epochs == 0
    assert FeatureConfig.from_dict(FeatureConfig().as_dict()) == FeatureConfig()
    assert FeatureConfig().entity_lag_epochs == 1
    with pytest.raises(ValueError, match="whole number of epochs"):
        FeatureConfig.from_dict({"entity_lag_epochs": 1.5})
    with pytest.raises(ValueError, match="from 0 to"):
        FeatureConfig(entity_lag_epochs=-1)


def test_an_engine_without_the_table_reports_entity_features_as_unknown() -> None:
    features = run([tx(0), tx(120)], FeatureEngine())
    assert features.filter(like="terminal_tx_").isna().all().all()


def test_the_fraud_rate_counts_a_fraud_only_once_known_and_its_day_has_matured() -> None:
    engine = FeatureEngine(entity_table=True)
    day = timedelta(days=1)
    # ten transactions at the terminal on day 0, one of them fraud, reported on day 2
    run([tx(i * 600.0, customer=f"c{i}") for i in range(10)], engine)
    engine.add_fraud_labels(fraud_label(T0 + 2 * day, T0 + timedelta(seconds=600)))
    early = run([tx((3 * day).total_seconds(), customer="x")], engine)
    assert np.isnan(early["terminal_fraud_rate_30d"].iloc[0]), (
        "day 0 is not matured three days later (delay 7 d)"
    )
    late = run([tx((9 * day).total_seconds(), customer="y")], engine)
    assert late["terminal_fraud_rate_30d"].iloc[0] == pytest.approx(0.1, rel=0.01)
    assert late["terminal_matured_tx_30d"].iloc[0] == pytest.approx(
        10 * np.exp(-8.5 / 30), rel=0.01
    )  # decayed from the day's end


def test_a_fraud_reported_after_its_day_matured_still_counts_once_known() -> None:
    engine = FeatureEngine(entity_table=True)
    day = timedelta(days=1)
    run([tx(i * 600.0, customer=f"c{i}") for i in range(4)], engine)
    before = run([tx((20 * day).total_seconds(), customer="x")], engine)
    assert before["terminal_fraud_rate_30d"].iloc[0] == 0.0
    engine.add_fraud_labels(fraud_label(T0 + 21 * day, T0))
    after = run([tx((22 * day).total_seconds(), customer="y")], engine)
    assert after["terminal_fraud_rate_30d"].iloc[0] == pytest.approx(1 / 4, rel=0.05)


def test_distinct_customers_are_estimated_closely_for_tens_of_customers() -> None:
    records = [tx(i * 30.0, customer=f"c{i % 40}") for i in range(200)] + [tx(200 * 30.0 + 120, customer="z")]
    features = run(records)
    assert features["terminal_customers_7d"].iloc[-1] == pytest.approx(40, rel=0.2)


def test_zero_amounts_give_finite_ratios_never_infinite() -> None:
    # After card verifications ($0.00) a real charge compares with one cent: large, finite, and
    # unchanged for any history of real amounts (see the kernel's amount ratios).
    features = run([tx(i * 100.0, amount=0.0) for i in range(5)] + [tx(600.0, amount=25.0)])
    values = features.to_numpy()
    assert not np.isinf(values).any()
    assert features["amount_to_mean"].iloc[-1] == pytest.approx(25.0 / 0.01)


def test_the_components_loop_builds_the_same_table_as_the_engine(tmp_path: object) -> None:
    rng = np.random.default_rng(3)
    records = [
        tx(
            float(s),
            customer=f"c{rng.integers(30)}",
            terminal=f"t{rng.integers(8)}",
            merchant_id=f"m{rng.integers(5)}",
        )
        for s in np.sort(rng.uniform(0, 5 * 86_400, 3_000))
    ]
    # the component's table stands at the newest epoch it has closed; which one a transaction reads
    # (the lag) is the reader's business: the engine without lag stands where the component does
    engine = FeatureEngine(FeatureConfig(entity_lag_epochs=0), entity_table=True)
    for start in range(0, len(records), 700):
        engine.transform(encode_records(records[start : start + 700]))
    component = EntityTable()
    batch = encode_records(records)
    component.ingest(
        batch.txf[:, L.TF_TIME], batch.risk_keys, batch.txi[:, L.TI_CUSTOMER_HASH], FeatureConfig()
    )
    assert engine.entities is not None and len(component) == len(engine.entities)
    rows = len(component)
    assert np.array_equal(component.floats[:rows], engine.entities.floats[:rows])
    assert np.array_equal(component.ints[:rows], engine.entities.ints[:rows])
    assert component.epoch == engine.entities.epoch and component.queued == engine.entities.queued
