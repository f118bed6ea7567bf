"""Every kind of poison record is refused with a reason naming its field; valid edge cases are kept."""

from __future__ import annotations

import orjson
import pytest

from fraudops.extras import ExtraFields, ExtraKind
from fraudops_stream.decode import decode_batch
from tests.poison import POISONS, Poison


@pytest.mark.timeout(60)
@pytest.mark.parametrize("poison", POISONS, ids=lambda p: p.kind)
def test_each_poison_is_refused_with_a_reason_naming_its_field(poison: Poison) -> None:
    good = orjson.dumps(
        {
            "transaction_id": "good-1",
            "event_time": "2026-08-01T10:00:00Z",
            "customer_id": "c-1",
            "amount": 3.0,
        }
    )
    indexes, _, rejects = decode_batch([good, poison.make("bad-1", "c-1"), good])

    assert indexes == [0, 2], "the valid records around the poison are kept, in order"
    assert [r.index for r in rejects] == [1]
    assert rejects[0].field == poison.field
    assert rejects[0].reason.startswith(f"{poison.field}: ") or poison.field == "record"


def test_a_whole_batch_of_poisons_leaves_the_valid_records_aligned() -> None:
    values = []
    for i, poison in enumerate(POISONS):
        values.append(
            orjson.dumps(
                {
                    "transaction_id": f"ok-{i}",
                    "event_time": "2026-08-01T10:00:00Z",
                    "customer_id": "c-1",
                    "amount": float(i),
                }
            )
        )
        values.append(poison.make(f"bad-{i}", "c-1"))
    indexes, records, rejects = decode_batch(values)

    assert indexes == list(range(0, len(values), 2))
    assert [r["transaction_id"] for r in records] == [f"ok-{i}" for i in range(len(POISONS))]
    assert [(r.index, r.field) for r in rejects] == [(2 * i + 1, p.field) for i, p in enumerate(POISONS)]


@pytest.mark.parametrize(
    ("amount", "stored"), [(0, 0.0), (0.0, 0.0), (0.1 + 0.2, 0.3), (19.99, 19.99), (10_000_000, 10_000_000.0)]
)
def test_amounts_in_whole_cents_are_kept_and_rounded_to_cents(amount: float, stored: float) -> None:
    value = orjson.dumps(
        {"transaction_id": "t", "event_time": "2026-08-01T10:00:00Z", "customer_id": "c", "amount": amount}
    )
    _, records, rejects = decode_batch([value])
    assert not rejects
    assert records[0]["amount"] == stored


def test_a_negative_amount_is_refused_and_the_reason_says_how_to_send_a_refund() -> None:
    value = orjson.dumps(
        {
            "transaction_id": "t",
            "event_time": "2026-08-01T10:00:00Z",
            "customer_id": "c",
            "amount": -20.0,
            "transaction_type": "REFUND",
        }
    )
    _, _, rejects = decode_batch([value])
    assert rejects[0].field == "amount"
    assert "REFUND with a positive amount" in rejects[0].reason


def test_an_extra_field_of_the_wrong_kind_for_its_model_input_is_refused_and_others_are_kept() -> None:
    fields = ExtraFields({"mcc": ExtraKind.CATEGORICAL, "customer_age": ExtraKind.NUMERIC})
    base = {"event_time": "2026-08-01T10:00:00Z", "customer_id": "c-1", "amount": 3.0}
    values: list[bytes | None] = [
        orjson.dumps(
            {**base, "transaction_id": "ok", "extras": {"mcc": "5411", "customer_age": 40, "new": "x"}}
        ),
        orjson.dumps({**base, "transaction_id": "mcc-number", "extras": {"mcc": 5411}}),
        orjson.dumps(
            {**base, "transaction_id": "age-text", "channel": "web", "extras": {"customer_age": "40"}}
        ),
        orjson.dumps({**base, "transaction_id": "none"}),
    ]  # the third takes pydantic's path (a lower-case channel): the kinds are checked on both paths

    indexes, records, rejects = decode_batch(values, fields)

    assert indexes == [0, 3] and records[0]["extras"]["new"] == "x", "a field no model reads is kept"
    assert "extras" not in records[1]
    assert [(r.index, r.field) for r in rejects] == [(1, "extras.mcc"), (2, "extras.customer_age")]
    assert rejects[0].reason == "extras.mcc: must be text or null: mcc is a categorical model input"
    assert decode_batch(values)[0] == [0, 1, 2, 3], "without models reading them, any kind is kept"
