"""The direct encoding of a few `Transaction`s (the gateway's path) gives the arrays `encode_columns` gives."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import orjson
import pandas as pd
import pytest

from fraudops.features import layout as L
from fraudops.features.encode import (
    SMALL_BATCH,
    EncodedBatch,
    EntityEvents,
    _encode_small,
    _transaction_record,
    encode_entity_events,
    encode_frame,
    encode_records,
    encode_records_columnar,
    encode_transactions,
    siphash_texts,
    stable_hash,
    stable_hash_texts,
)
from fraudops.schema import MerchantCategory, Transaction
from fraudops_simulator import SimulationConfig, simulate
from fraudops_simulator.kafka import encode_records as to_json


def through_pandas(transactions: list[Transaction]) -> EncodedBatch:
    return encode_records_columnar([_transaction_record(tx) for tx in transactions])


def assert_identical(fast: EncodedBatch, reference: EncodedBatch) -> None:
    for name in ("txf", "txi", "risk_keys"):
        ours, theirs = getattr(fast, name), getattr(reference, name)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, name
        assert np.array_equal(ours, theirs, equal_nan=True), f"{name} differs"
    assert fast.customer_ids.dtype == object
    assert fast.customer_ids.tolist() == reference.customer_ids.tolist()


@pytest.fixture(scope="module")
def simulated() -> list[Transaction]:
    """Every shape the simulator makes: cards, transfers, ATM, declines, geo, devices, account events."""
    transactions = []
    for table in simulate(SimulationConfig(transactions=1500, customers=100, days=20, seed=4)):
        transactions.extend(Transaction.model_validate_json(raw) for raw in to_json(table))
    return transactions


def test_one_transaction_at_a_time_encodes_like_pandas(simulated: list[Transaction]) -> None:
    for transaction in simulated:
        assert_identical(encode_transactions([transaction]), through_pandas([transaction]))


@pytest.mark.parametrize("size", [2, 7, SMALL_BATCH])
def test_small_batches_encode_like_pandas(simulated: list[Transaction], size: int) -> None:
    for start in range(0, 600, size):
        batch = simulated[start : start + size]
        assert_identical(_encode_small(batch), through_pandas(batch))


def test_times_with_offsets_naive_times_and_microseconds_encode_like_pandas() -> None:
    plus_five_thirty = timezone(timedelta(hours=5, minutes=30))
    transactions = [
        Transaction(
            amount=12.34,
            event_time=datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=plus_five_thirty),
            credential_change_at=datetime(2026, 2, 28, 23, 59, 59),
            customer_id="c1",
        ),
        Transaction(
            amount=0.01,
            event_time=datetime(1970, 1, 1, 0, 0, 0, 1),
            account_opened_at=datetime(2001, 9, 9, 1, 46, 40, tzinfo=timezone(timedelta(hours=-11))),
        ),
        Transaction.model_validate_json(
            orjson.dumps(
                {
                    "amount": 1e7,
                    "event_time": "2026-08-01T01:12:10.779Z",
                    "channel": "web",
                    "auth_result": "declined_other",
                    "ip_address": "2001:db8:85a3:0:0:8a2e:370:7334",
                    "latitude": -33.9,
                    "longitude": 151.2,
                    "hour_of_day": 0,
                    "is_international": True,
                    "merchant_category": "CRYPTO",
                    "beneficiary_id": "b-1",
                    "terminal_id": "t-9",
                    "country": "AU",
                    "device_id": "d-1",
                    "merchant_id": "m-1",
                }
            )
        ),
    ]

    for transaction in transactions:
        assert_identical(encode_transactions([transaction]), through_pandas([transaction]))
    assert_identical(_encode_small(transactions), through_pandas(transactions))


def test_stable_hash_of_texts_equals_stable_hash() -> None:
    texts = ["", "a", "merchant-0001", "203.0.113", "ünïcödé", "x" * 500, "C000000042"]

    assert np.array_equal(stable_hash_texts(texts), stable_hash(np.asarray(texts, dtype=object)))
    assert stable_hash_texts([]).tolist() == []


def test_decoded_records_of_any_batch_size_encode_like_pandas(simulated: list[Transaction]) -> None:
    from fraudops_stream.decode import decode_batch

    _, records, _ = decode_batch([tx.model_dump_json(exclude_none=True).encode() for tx in simulated])
    partial = [
        {k: v for k, v in r.items() if k in ("transaction_id", "event_time", "customer_id", "amount")}
        for r in records[:50]
    ]
    for batch in (records[:1], records[:73], records[73:400], records, partial, []):
        assert_identical(encode_records(batch), encode_records_columnar(batch))


def test_the_private_siphash_equals_pandas_public_hash_array_value_for_value() -> None:
    """`siphash_texts` calls pandas' private `hash_object_array`: pinned to the public `hash_array`."""
    rng = np.random.default_rng(8)
    texts = ["", "a", "merchant-0001", "203.0.113", "ünïcödé", "x" * 500, "C000000042", "🙂"]
    texts += [f"id-{value}" for value in rng.integers(0, 10**12, 2000)]
    array = np.asarray(texts, dtype=object)

    expected = pd.util.hash_array(array, categorize=False).view(np.int64)
    assert siphash_texts(array).tolist() == expected.tolist()
    assert siphash_texts(array).tolist() == pd.util.hash_array(array, categorize=True).view(np.int64).tolist()


ODD_IDS: list[dict[str, object]] = [
    {
        "transaction_id": "t1",
        "event_time": "2026-08-01T10:00:00+00:00",
        "amount": 1.0,
        "customer_id": 17,
        "merchant_id": 4,
        "device_id": None,
        "country": "DE",
    },
    {
        "transaction_id": "t2",
        "event_time": "2026-08-01T10:00:01+00:00",
        "amount": 2.0,
        "customer_id": "c",
        "merchant_id": "m",
        "device_id": 5.5,
        "terminal_id": float("nan"),  # a missing value as pandas writes it
    },
]


def test_ids_that_are_not_strings_or_are_nan_hash_like_pandas() -> None:
    assert_identical(encode_records(ODD_IDS), encode_records_columnar(ODD_IDS))


def test_the_entity_events_of_records_are_those_of_their_full_encoding(simulated: list[Transaction]) -> None:
    from fraudops_stream.decode import decode_batch

    _, records, _ = decode_batch([tx.model_dump_json(exclude_none=True).encode() for tx in simulated])
    for batch in (records[:1], records, ODD_IDS, []):
        ours, full = encode_entity_events(batch), EntityEvents.of(encode_records(batch))
        for name in ("times", "risk_keys", "customer_hashes"):
            assert getattr(ours, name).dtype == getattr(full, name).dtype, name
            assert np.array_equal(getattr(ours, name), getattr(full, name), equal_nan=True), name
    assert (encode_entity_events(records).risk_keys != 0).any()  # not vacuous: real keys compared


@pytest.mark.parametrize("spelling", ["Electronics", " ELECTRONICS ", "electronics"])
def test_any_case_or_padding_of_a_category_gets_the_same_code_in_training_and_serving(spelling: str) -> None:
    """Training's columnar path and serving's row path both read `Electronics` as electronics, never OTHER."""
    record = {
        "transaction_id": "t1",
        "event_time": "2026-08-01T10:00:00+00:00",
        "customer_id": "c1",
        "amount": 10.0,
        "merchant_category": spelling,
        "channel": "pos",
        "transaction_type": "Purchase",
    }
    columnar = encode_records_columnar([record])
    row_by_row = encode_records([record])
    electronics = L.CATEGORY_CODES[MerchantCategory.ELECTRONICS]
    assert columnar.txi[0, L.TI_CATEGORY] == row_by_row.txi[0, L.TI_CATEGORY] == electronics
    assert columnar.txi[0, L.TI_CHANNEL] == row_by_row.txi[0, L.TI_CHANNEL] == L.CH_POS
    frame = pd.DataFrame([record]).assign(event_time=pd.to_datetime(["2026-08-01T10:00:00Z"]))
    assert encode_frame(frame).txi[0, L.TI_CATEGORY] == electronics
