"""The stream's fast decoder never accepts what the pydantic schema would refuse, and agrees on values."""

from __future__ import annotations

import orjson
import pytest

from fraudops.fastschema import fast_decode
from fraudops_simulator import SimulationConfig, simulate
from fraudops_simulator.kafka import encode_records
from fraudops_stream.decode import Rejected, decode_batch, validate_one

BASE = {"transaction_id": "t-1", "event_time": "2026-08-01T10:00:00Z", "customer_id": "c-1", "amount": 12.5}


def pydantic_only(values: list[bytes | None]) -> tuple[list[int], list[dict], list[Rejected]]:
    """The reference: every record through pydantic, one by one."""
    indexes, records, rejects = [], [], []
    for index, value in enumerate(values):
        outcome = validate_one(value) if value else ("record has no value", "record")
        if isinstance(outcome, dict):
            indexes.append(index)
            records.append(outcome)
        else:
            rejects.append(Rejected(index, *outcome))
    return indexes, records, rejects


def variants() -> list[dict]:
    """Records on the edges of the schema: odd spellings, near misses, and plain invalid ones."""
    return [
        BASE,
        {**BASE, "channel": "web"},  # lower-case enum: valid, via pydantic
        {**BASE, "merchant_category": "Crypto"},
        {**BASE, "event_time": "2026-08-01T10:00:00"},  # naive: valid, taken as UTC
        {**BASE, "event_time": "2026-08-01T12:00:00+02:00"},
        {**BASE, "amount": "12.5"},  # a number as a string: pydantic's lax mode accepts it
        {**BASE, "amount": 12},
        {**BASE, "amount": -1},
        {**BASE, "amount": 0},  # a card verification: valid
        {**BASE, "amount": 0.001},  # a fraction of a cent
        {**BASE, "amount": 0.1 + 0.2},  # binary noise around 30 cents: valid, stored as 0.3
        {**BASE, "amount": 1e12},
        {**BASE, "ip_address": " 10.0.0.1 "},  # pydantic strips the spaces
        {**BASE, "ip_address": ""},
        {**BASE, "customer_id": None},
        {k: v for k, v in BASE.items() if k != "customer_id"},
        {k: v for k, v in BASE.items() if k != "transaction_id"},
        {**BASE, "latitude": 52.5},  # without longitude
        {**BASE, "latitude": 95.0, "longitude": 13.0},
        {**BASE, "event_time": "2099-01-01T00:00:00Z"},
        {**BASE, "unknown": 1},
        {**BASE, "hour_of_day": 24},
        {**BASE, "hour_of_day": 5.0},
        {**BASE, "is_international": "true"},
        {**BASE, "country": "de"},
        {**BASE, "transaction_id": "has space"},
        {**BASE, "currency": "EURO"},
        {**BASE, "customer_id": "cust/1"},  # outside the id character class (checked batch-wide)
        {**BASE, "device_id": "dév-1"},
        {**BASE, "merchant_id": "m-1\n"},
        {**BASE, "country": "D1"},
        {**BASE, "ip_address": "10.0.0.1\x00"},
        {**BASE, "event_time": "1969-12-31T23:59:59Z"},
        {**BASE, "account_opened_at": "1800-01-01T00:00:00Z"},
        # a bank's own fields
        {**BASE, "extras": {"mcc": " Grocery ", "customer_age": 41, "pos_entry": None}},  # kept as sent
        {**BASE, "extras": {}},
        {**BASE, "extras": None},  # no extras: the dict leaves the key out, as without it
        {**BASE, "extras": {"card_present": True}},  # booleans are not numbers here
        {**BASE, "extras": {"customer_age": 3.5e38}},  # beyond float32
        {**BASE, "extras": {"customer_age": 2**63 - 1}},  # a large integer: a float32 one
        {**BASE, "extras": {"mcc": "54\x0011"}},
        {**BASE, "extras": {"mcc": "5411\n"}},
        {**BASE, "extras": {"mcc": "\x85"}},  # a C1 control character
        {**BASE, "extras": {"mcc": "m" * 128}},
        {**BASE, "extras": {"mcc": "m" * 129}},
        {**BASE, "extras": {"pos entry": "chip"}},
        {**BASE, "extras": {"9lives": 1}},
        {**BASE, "extras": {"mcc\n": "5411"}},
        {**BASE, "extras": {f"f{i}": i for i in range(33)}},
        {**BASE, "extras": {"mcc": ["5411"]}},
        {**BASE, "extras": {"mcc": {"code": "5411"}}},
        {**BASE, "extras": "mcc=5411"},
        {**BASE, "extras": {"note": 'has ": inside'}},
    ]


def test_the_fast_path_takes_the_simulators_records_and_yields_pydantics_values() -> None:
    table = next(simulate(SimulationConfig(transactions=3_000, seed=4)))
    values = list(encode_records(table))
    accepted, records, slow = fast_decode(values)
    assert not slow and len(accepted) == len(values)
    _, reference, _ = pydantic_only(values)
    assert records == reference


@pytest.mark.parametrize("record", variants(), ids=lambda r: str(sorted(r.items()))[:60])
def test_anything_the_fast_path_accepts_pydantic_accepts_with_the_same_values(record: dict) -> None:
    value = orjson.dumps(record)
    accepted, records, _ = fast_decode([value])
    reference_indexes, reference, rejects = pydantic_only([value])
    if accepted:
        assert reference_indexes == [0] and records == reference
    combined = decode_batch([value])
    assert combined == (reference_indexes, reference, rejects)


def test_records_with_extra_fields_take_the_fast_path() -> None:
    values = [
        orjson.dumps({**BASE, "transaction_id": f"t-{i}", "extras": {"mcc": "5411", "age": i}})
        for i in range(3)
    ]
    accepted, records, slow = fast_decode(values)
    assert accepted == [0, 1, 2] and not slow
    assert [r["extras"] for r in records] == [{"mcc": "5411", "age": float(i)} for i in range(3)]


def test_an_extra_field_given_twice_is_refused_like_any_duplicated_key() -> None:
    value = b'{"transaction_id":"t-1","event_time":"2026-08-01T10:00:00Z","customer_id":"c-1","amount":1,' + (
        b'"extras":{"mcc":"5411","mcc":"7995"}}'
    )
    indexes, _, rejects = decode_batch([value])
    assert not indexes and rejects[0].field == "extras.mcc" and "more than once" in rejects[0].reason


def test_a_mixed_batch_keeps_its_order_and_every_reject_its_reason() -> None:
    values = [orjson.dumps(r) for r in variants()] + [b"{broken", None]
    indexes, records, rejects = decode_batch(values)
    reference = pydantic_only(values)
    assert (indexes, records) == reference[:2]
    assert [r.index for r in rejects] == sorted(r.index for r in rejects)
    assert rejects == reference[2]
