"""A catalogue of bad stream records: every kind of poison, and the field its dead letter must name.

Shared by the decoder's unit tests, the property test and the fault-injection suite, so "every
invalid record is dead-lettered with a reason naming the field" means the same list everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson


@dataclass(frozen=True)
class Poison:
    kind: str
    field: str  # what the DLQ's `dlq.field` header must say
    make: Callable[[str, str], bytes | None]  # (transaction id, customer id) -> the record's value


def _record(transaction_id: str, customer_id: str, **fields: object) -> dict[str, object]:
    return {
        "transaction_id": transaction_id,
        "event_time": "2026-08-01T10:00:00Z",
        "customer_id": customer_id,
        "amount": 12.5,
        **fields,
    }


def _json(**fields: object) -> Callable[[str, str], bytes]:
    return lambda tx, customer: orjson.dumps(_record(tx, customer, **fields))


def _without(name: str) -> Callable[[str, str], bytes]:
    return lambda tx, customer: orjson.dumps({k: v for k, v in _record(tx, customer).items() if k != name})


def _raw(template: str) -> Callable[[str, str], bytes]:
    """A record written by hand (what orjson would refuse to write), `{tx}` and `{customer}` filled in."""
    return lambda tx, customer: template.replace("{tx}", tx).replace("{customer}", customer).encode()


_HEAD = '{"transaction_id":"{tx}","event_time":"2026-08-01T10:00:00Z","customer_id":"{customer}"'
_NESTED = "[" * 400 + "]" * 400

POISONS: tuple[Poison, ...] = (
    Poison("not JSON", "record", lambda tx, customer: b"{this is not json " + tx.encode()),
    Poison("binary bytes", "record", lambda tx, customer: b"\x00\x9f\xff\xfe" + tx.encode()),
    Poison(
        "invalid UTF-8",
        "record",
        lambda tx, customer: _raw(_HEAD + ',"amount":1,"device_id":"d')(tx, customer) + b"\xc3\x28" + b'"}',
    ),
    Poison("lone surrogate", "record", _raw(_HEAD + ',"amount":1,"device_id":"\\ud800x"}')),
    Poison("JSON array", "record", lambda tx, customer: orjson.dumps([tx, customer, 12.5])),
    Poison("empty value", "record", lambda tx, customer: b""),
    Poison("no value (tombstone)", "record", lambda tx, customer: None),
    Poison("deeply nested", "record", _raw(_HEAD + ',"amount":' + _NESTED + "}")),
    Poison("amount as text", "amount", _json(amount="twelve")),
    Poison("boolean as text", "is_international", _json(is_international="maybe")),
    Poison("NaN amount", "amount", _raw(_HEAD + ',"amount":NaN}')),
    Poison("infinite amount", "amount", _raw(_HEAD + ',"amount":1e999}')),
    Poison("fraction of a cent", "amount", _json(amount=0.001)),
    Poison("negative amount", "amount", _json(amount=-25.0)),
    Poison("amount too large", "amount", _json(amount=1e12)),
    Poison("NUL in a text field", "ip_address", _json(ip_address="10.0.0.1\x00")),
    Poison("control character in an id", "merchant_id", _json(merchant_id="m-\x07-1")),
    Poison("1 MB value", "device_id", _json(device_id="d" * 1_000_000)),
    Poison("unknown field", "note", _json(note="hello")),
    Poison("duplicated key", "amount", _raw(_HEAD + ',"amount":1.5,"amount":9999}')),
    Poison("missing amount", "amount", _without("amount")),
    Poison("missing transaction id", "transaction_id", _without("transaction_id")),
    Poison("event time in the future", "event_time", _json(event_time="2999-01-01T00:00:00Z")),
    Poison("event time before 1970", "event_time", _json(event_time="1912-04-15T02:20:00Z")),
    Poison("account opened in year 1", "account_opened_at", _json(account_opened_at="0001-01-01T00:00:00Z")),
    Poison("unknown channel", "channel", _json(channel="TELEPATHY")),
    Poison("latitude alone", "longitude", _json(latitude=52.5)),
    Poison("hour 24", "hour_of_day", _json(hour_of_day=24)),
    Poison("lower-case country", "country", _json(country="de")),
    Poison("NUL in an extra field", "extras.mcc", _json(extras={"mcc": "54\x0011"})),
    Poison("boolean extra field", "extras.card_present", _json(extras={"card_present": True})),
    Poison("extra number beyond float32", "extras.customer_age", _json(extras={"customer_age": 1e39})),
    Poison(
        "extra field given twice", "extras.mcc", _raw(_HEAD + ',"amount":1,"extras":{"mcc":"a","mcc":"b"}}')
    ),
)
