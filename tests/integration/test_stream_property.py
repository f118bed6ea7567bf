"""A property of the stream's path from bytes to rows, against the real PostgreSQL: whatever a record's
bytes, it ends "stored" or "dead-lettered with a reason naming a field" — never an exception.

The path is the consumer's own: `decode_batch` (fast path, pydantic's slow path) → features
(`encode_records`, the engine) → the rows and decisions (`transactions_table`, `VariantScores`) →
`store_isolating` (COPY, with refused records isolated). Hypothesis writes the records: valid ones
with one field swapped for anything JSON can hold (control characters, lone surrogates, NaN, huge
numbers, nesting, odd keys), and plain bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraudops.db import migrate
from fraudops.features.encode import encode_records
from fraudops.features.engine import FeatureEngine
from fraudops.schema import Transaction
from fraudops.sink import transactions_table, write_batch
from fraudops.variants import VariantScores
from fraudops_stream.decode import decode_batch
from fraudops_stream.writer import store_isolating

pytestmark = pytest.mark.integration

FIELDS = list(Transaction.model_fields)
_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(places=3, allow_nan=False).map(float),
    st.text(max_size=80),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "a\x00b",
            "\ud800",
            "web",
            "POS",
            "EUR",
            "DE",
            "2026-08-01T10:00:00",
            "2026-08-01T10:00:00Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "1.2.3.4",
            "::1",
            "x" * 70,
        ]
    ),
)
_json_value = st.recursive(
    _json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def record_bytes(draw: st.DrawFn) -> bytes | None:
    kind = draw(
        st.sampled_from(["valid", "one field changed", "field removed", "extra key", "raw bytes", "none"])
    )
    if kind == "raw bytes":
        return draw(st.binary(max_size=200))
    if kind == "none":
        return None
    record: dict[str, Any] = {
        "transaction_id": f"p-{draw(st.integers(0, 10**9))}",
        "customer_id": f"c-{draw(st.integers(0, 50))}",
        "event_time": draw(
            st.datetimes(
                min_value=datetime(2020, 1, 1), max_value=datetime(2026, 11, 1), timezones=st.just(UTC)
            )
        ).isoformat(),
        "amount": draw(st.integers(0, 10**9)) / 100,
        "merchant_category": draw(st.sampled_from(["grocery", "crypto", "other"])),
        "ip_address": draw(st.sampled_from([None, "10.0.0.1", "fe80::1%eth0"])),
    }
    name = draw(st.sampled_from(FIELDS))
    if kind == "one field changed":
        record[name] = draw(_json_value)
    elif kind == "field removed":
        record.pop(name, None)
    elif kind == "extra key":
        record[draw(st.text(max_size=10))] = draw(_json_value)
    # ensure_ascii writes a lone surrogate as its \ud800 escape; allow_nan writes NaN / Infinity literals.
    return json.dumps(record, allow_nan=True).encode()


@pytest.fixture(scope="module")
def database(local_stack: Any) -> Iterator[str]:
    name = "property_fuzz"
    admin = local_stack.postgres.url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    migrate.upgrade(url)
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(values=st.lists(record_bytes(), min_size=1, max_size=12))
def test_every_record_is_stored_or_dead_lettered_with_a_reason_never_an_exception(
    database: str, values: list[bytes | None]
) -> None:
    indexes, records, rejects = decode_batch(values)
    assert sorted([*indexes, *(r.index for r in rejects)]) == list(range(len(values))), (
        "each record: one outcome"
    )
    assert all(
        r.reason and r.field and r.reason.startswith(("record", r.field, "not valid JSON")) for r in rejects
    )
    if not records:
        return
    features = FeatureEngine().transform(encode_records(records))
    assert features.shape[0] == len(records) and not np.isinf(features).any()
    ids = [r["transaction_id"] for r in records]
    rows = transactions_table(records, "stream", [0] * len(records), list(range(len(records))))
    scores = VariantScores(
        "stable",
        "card-fraud",
        "v1",
        False,
        0.5,
        "stream",
        datetime.now(UTC),
        np.arange(len(records)),
        ids,
        [r["customer_id"] for r in records],
        np.full(len(records), 0.9, dtype=np.float32),
        np.ones(len(records), dtype=bool),
        {},
    )
    with psycopg.connect(database, autocommit=True) as conn:
        refused = store_isolating(
            lambda r, d, a: write_batch(conn, r, d, a), rows, scores.table(), scores.decisions()
        )
        stored = {
            row[0]
            for row in conn.execute(
                "SELECT transaction_id FROM transactions WHERE transaction_id = ANY(%s)", (ids,)
            ).fetchall()
        }
    assert all(r.reason and r.field for r in refused)
    assert set(ids) == stored | {r.transaction_id for r in refused}, "stored, or refused with a reason"
    assert not refused, f"validation let through what PostgreSQL refuses: {refused[:2]}"
    assert all(math.isfinite(r["amount"]) and r["amount"] >= 0 for r in records)
