"""One feature definition: online replay equals the offline batch, and features are point-in-time.

Offline = training's path: the whole history as a DataFrame through `FeatureEngine.replay`.
Online = the stream's and the gateway's path: JSON records decoded and validated like Kafka records,
fed in micro-batches of random sizes (some of one transaction, like the gateway), with fraud labels
arriving as they become known; and with restarts along the way: a brand-new engine reads every label
known so far (a fresh consumer's first label poll) and takes every customer's state back through
`export_customers` / `import_customers`, the path a checkpoint takes, and the entity table restarted
from its own snapshot (what the entity-state component keeps). Both sides hold the entity table
(what training replays and the entity-state component keeps). The stream's own restarts and
hand-overs between consumers are in `test_stream_labelled_restarts.py`. A bank's own columns (extra
inputs) reach the model online as training encodes them, value for value, too.
"""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest

from fraudops.extras import ExtraInputs
from fraudops.features.encode import encode_records
from fraudops.features.engine import FeatureEngine, labels_from_history
from fraudops.features.entities import EntityTable
from fraudops.features.spec import FEATURE_NAMES, FeatureConfig
from fraudops_simulator import SimulationConfig
from fraudops_stream.decode import decode_batch
from tests.unit.histories import history_and_values


@pytest.fixture(scope="module")
def history() -> tuple[pd.DataFrame, list[bytes]]:
    return history_and_values(SimulationConfig(transactions=30_000, customers=600, days=40, seed=21))


def offline(frame: pd.DataFrame) -> np.ndarray:
    return FeatureEngine(entity_table=True).replay(frame)


def online(
    frame: pd.DataFrame, values: list[bytes], seed: int, restarts: bool = False
) -> tuple[np.ndarray, int]:
    """Micro-batches of 1–700 records, labels delivered once known; with `restarts`, every few batches a
    restart: a fresh engine is given every label known so far, then every customer's state. Returns the
    features and how many restarts happened while customers held applied labels."""
    rng = np.random.default_rng(seed)
    labels = labels_from_history(frame, FeatureConfig())
    order = np.argsort(labels.known_at, kind="stable")
    labels = labels.take(order)
    times = frame["event_time"].dt.as_unit("ns").astype("int64").to_numpy() / 1e9
    customers = frame["customer_id"].unique().tolist()
    engine = FeatureEngine(entity_table=True)
    delivered = 0
    labelled_restarts = 0
    parts = []
    start = 0
    while start < len(values):
        size = 1 if rng.random() < 0.2 else int(rng.integers(2, 700))
        end = min(start + size, len(values))
        # the labels known by now reach the engine (as they would through the feedback table)
        known = int(np.searchsorted(labels.known_at, times[end - 1], side="left"))
        if known > delivered:
            engine.add_fraud_labels(labels.take(slice(delivered, known)))
            delivered = known
        indexes, records, rejects = decode_batch(values[start:end])
        assert not rejects and len(indexes) == end - start
        parts.append(engine.transform(encode_records(records)))
        if restarts and rng.random() < 0.1:  # a restart: labels first (the first poll), then the state
            fresh = FeatureEngine()
            # the restored entity table counted the labels the old engine applied (the kernel applies a
            # label before the first transaction after its known-at time); the rest it has not
            taken = int(np.searchsorted(labels.known_at[:delivered], times[end - 1], side="left"))
            fresh.add_fraud_labels(labels.take(slice(0, taken)), entity_table_has_them=True)
            fresh.add_fraud_labels(labels.take(slice(taken, delivered)))
            fresh.import_customers(engine.export_customers(customers))
            # the entity-state component restarts from its own snapshot: rows, open epoch and its queue
            assert engine.entities is not None
            fresh.entities = EntityTable.from_arrays(engine.entities.arrays())
            # each delivered label is known before this batch's last record
            labelled_restarts += delivered > 0
            engine = fresh
        start = end
    return np.concatenate(parts), labelled_restarts


def test_online_replay_equals_the_offline_batch_value_for_value(
    history: tuple[pd.DataFrame, list[bytes]],
) -> None:
    frame, values = history
    batch = offline(frame)
    streamed, _ = online(frame, values, seed=1)
    assert batch.shape == (len(frame), len(FEATURE_NAMES))
    differences = ~((batch == streamed) | (np.isnan(batch) & np.isnan(streamed)))
    assert not differences.any(), (
        f"{int(differences.sum())} values differ, first in feature "
        f"{FEATURE_NAMES[int(np.argwhere(differences)[0][1])]!r}"
    )


def test_restarts_on_a_labelled_history_change_no_feature(history: tuple[pd.DataFrame, list[bytes]]) -> None:
    # A restored customer's state already holds the labels applied before the checkpoint, and the fresh
    # engine is given every label again: each must still count once (it was counted twice).
    frame, values = history
    batch = offline(frame)
    streamed, labelled_restarts = online(frame, values, seed=3, restarts=True)
    assert labelled_restarts >= 5, "restarts happened after labels had taken effect"
    differences = ~((batch == streamed) | (np.isnan(batch) & np.isnan(streamed)))
    assert not differences.any(), (
        f"{int(differences.sum())} values differ after restarts, first in feature "
        f"{FEATURE_NAMES[int(np.argwhere(differences)[0][1])]!r}"
    )


def test_label_risk_features_are_used_so_the_equality_covers_them(
    history: tuple[pd.DataFrame, list[bytes]],
) -> None:
    frame, _ = history
    batch = offline(frame)
    risk = [
        FEATURE_NAMES.index(name)
        for name in ("merchant_fraud_labels", "device_fraud_labels", "customer_fraud_labels")
    ]
    assert (batch[:, risk] > 0).any(axis=0).all(), "every label-risk feature fires somewhere"


def test_entity_features_are_used_so_the_equality_covers_them(
    history: tuple[pd.DataFrame, list[bytes]],
) -> None:
    frame, _ = history
    batch = offline(frame)
    for table in ("merchant", "terminal", "device", "ip", "beneficiary"):
        for name in ("tx_1d", "tx_30d", "matured_tx_30d", "customers_7d"):
            column = batch[:, FEATURE_NAMES.index(f"{table}_{name}")]
            assert (column > 0).any(), f"{table}_{name} fires somewhere"
    rates = batch[:, [FEATURE_NAMES.index(f"{t}_fraud_rate_30d") for t in ("merchant", "terminal", "device")]]
    assert (rates > 0).any(axis=0).all(), "known frauds show in the label-delayed fraud rates"


def test_no_feature_of_a_transaction_changes_when_later_transactions_are_appended(
    history: tuple[pd.DataFrame, list[bytes]],
) -> None:
    frame, _ = history
    full = offline(frame)
    for cut in (5_000, 17_777):
        prefix = offline(frame.iloc[:cut])
        same = (prefix == full[:cut]) | (np.isnan(prefix) & np.isnan(full[:cut]))
        assert same.all(), f"features before row {cut} changed when later rows were added"


def test_a_label_known_after_a_transaction_does_not_reach_its_features(
    history: tuple[pd.DataFrame, list[bytes]],
) -> None:
    frame, _ = history
    late = frame.copy()
    # every label becomes known only after the end of the history: no risk feature may fire
    late["label_available_at"] = late["event_time"].max() + pd.Timedelta(days=1)
    features = offline(late)
    risk = [
        FEATURE_NAMES.index(name)
        for name in (
            "merchant_fraud_labels",
            "terminal_fraud_labels",
            "device_fraud_labels",
            "ip_fraud_labels",
            "beneficiary_fraud_labels",
            "customer_fraud_labels",
        )
    ]
    assert (features[:, risk] == 0).all()
    rates = features[
        :,
        [
            FEATURE_NAMES.index(f"{t}_fraud_rate_30d")
            for t in ("merchant", "terminal", "device", "ip", "beneficiary")
        ],
    ]
    assert not (rates > 0).any(), "no fraud rate counts a label before it is known"


def with_bank_columns(
    frame: pd.DataFrame, values: list[bytes], seed: int
) -> tuple[pd.DataFrame, list[bytes]]:
    """The history with two columns of a bank's own — an MCC-like category spelled every which way and
    the customer's age, each sometimes missing — and its records carrying the same values in `extras`
    (a missing one left out or sent as null; some records in spellings only pydantic's path takes)."""
    rng = np.random.default_rng(seed)
    spellings = np.array(
        ["Grocery", " grocery", "GROCERY ", "5411", "crypto", "Crypto", "", "rare-1"], dtype=object
    )
    mcc = rng.choice(spellings, len(frame), p=[0.2, 0.15, 0.1, 0.2, 0.15, 0.1, 0.05, 0.05])
    mcc[rng.random(len(frame)) < 0.1] = None
    age = rng.integers(18, 90, len(frame)).astype(np.float64)
    age[rng.random(len(frame)) < 0.1] = np.nan  # a CSV column with gaps: floats
    records = []
    for value, category, years in zip(values, mcc, age, strict=True):
        record = orjson.loads(value)
        extras: dict[str, object] = {}
        for name, given in (("mcc", category), ("customer_age", None if np.isnan(years) else int(years))):
            if given is not None or rng.random() < 0.5:
                extras[name] = given
        if rng.random() < 0.05:
            record["channel"] = record["channel"].lower()
        records.append(orjson.dumps({**record, "extras": extras}))
    return frame.assign(mcc=mcc, customer_age=age), records


def test_extra_fields_reach_the_model_online_exactly_as_training_encodes_its_columns(
    history: tuple[pd.DataFrame, list[bytes]],
) -> None:
    frame, values = with_bank_columns(*history, seed=5)
    # codes learned on the first half, where "rare-1" never occurs: later, it gets the learned rare code
    first_half = frame.iloc[: len(frame) // 2]
    extras = ExtraInputs.learn(
        first_half.assign(mcc=first_half["mcc"].where(first_half["mcc"] != "rare-1")),
        numeric=["customer_age"],
        categorical=["mcc"],
    )
    offline_inputs = extras.encode_frame(frame)
    rng = np.random.default_rng(6)
    parts, start = [], 0
    while start < len(values):  # micro-batches through the stream's decoder, as the consumer reads them
        end = min(start + (1 if rng.random() < 0.2 else int(rng.integers(2, 700))), len(values))
        indexes, records, rejects = decode_batch(values[start:end], extras.fields)
        assert not rejects and len(indexes) == end - start
        parts.append(extras.encode_rows([record.get("extras") for record in records]))
        start = end
    online_inputs = np.concatenate(parts)
    np.testing.assert_array_equal(online_inputs, offline_inputs)  # value for value, NaN where missing
    codes = offline_inputs[:, 1]
    assert len(np.unique(codes[~np.isnan(codes)])) == 4, "grocery, 5411, crypto and the rare code all occur"
