"""The schema on a real PostgreSQL: migrations go up and down, rows round-trip, idempotency holds."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.types.json import Jsonb

from fraudops import statestore
from fraudops.db import create_pool, migrate

pytestmark = pytest.mark.integration

EXPECTED_TABLES = {
    "transactions",
    "decisions",
    "alerts",
    "feedback_labels",
    "model_versions",
    "feature_checkpoints",
    "customer_feature_state",
    "entity_table_deltas",
    "entity_table_snapshots",
    "entity_component_state",
}


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return {row[0] for row in rows} - {"alembic_version"}


def test_migration_up_creates_every_table_and_down_removes_them(scratch_database: str) -> None:
    migrate.upgrade(scratch_database)
    assert _tables(scratch_database) == EXPECTED_TABLES
    assert migrate.current_revision(scratch_database) == "0006"

    migrate.downgrade(scratch_database, "base")
    assert _tables(scratch_database) == set()
    assert migrate.current_revision(scratch_database) is None

    migrate.upgrade(scratch_database)
    assert _tables(scratch_database) == EXPECTED_TABLES


def test_checkpointed_state_rows_are_compressed_with_lz4_through_the_staging_table(
    scratch_database: str,
) -> None:
    """Migration 0006 sets lz4 on the state columns (this server has it) and no compression on the entity
    deltas, and a checkpoint's rows arrive lz4-compressed: the staging table compresses them as the column
    does, and PostgreSQL keeps a value compressed in the staging table as it is. Customers' state
    compresses well, so each row is stored compressed; their bytes come back unchanged."""
    migrate.upgrade(scratch_database)
    with psycopg.connect(scratch_database) as conn:
        compression = dict(
            conn.execute(
                """SELECT attrelid::regclass::text, attcompression::text || attstorage::text FROM pg_attribute
                   WHERE (attrelid, attname) IN (('customer_feature_state'::regclass, 'state'),
                       ('entity_component_state'::regclass, 'queue'), ('entity_table_deltas'::regclass, 'body'))"""
            ).fetchall()
        )
        # lz4, compressible (x: extended); the deltas stored out of line as they are (e: external)
        assert compression == {
            "customer_feature_state": "lx",
            "entity_component_state": "lx",
            "entity_table_deltas": "e",
        }
        states = {f"c-{i}": bytes(range(256)) * 15 + i.to_bytes(4, "little") for i in range(50)}
        with conn.transaction():
            written = statestore.save_customers(conn, "t", [(c, 1, s) for c, s in states.items()])
        assert written == 50
        stored = conn.execute(
            "SELECT customer_id, state, pg_column_compression(state) FROM customer_feature_state"
        ).fetchall()
    assert {c: bytes(s) for c, s, _ in stored} == states
    assert {method for _, _, method in stored} == {"lz4"}


def test_a_resting_checkpoint_writes_in_slices_and_commits_them_at_once(
    scratch_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A periodic checkpoint rests between slices (statestore.save_customers with `rest`), inside the one
    transaction: while it rests, nothing of it is visible; after it, every row, byte for byte."""
    migrate.upgrade(scratch_database)
    states = {f"c-{i}": bytes(range(256)) * 15 + i.to_bytes(4, "little") for i in range(1200)}
    rests: list[tuple[float, int]] = []
    with psycopg.connect(scratch_database, autocommit=True) as onlooker:

        def rest(seconds: float) -> None:
            visible = onlooker.execute("SELECT count(*) FROM customer_feature_state").fetchone()[0]
            rests.append((seconds, visible))

        monkeypatch.setattr(statestore.time, "sleep", rest)
        with psycopg.connect(scratch_database) as conn:
            with conn.transaction():
                written = statestore.save_customers(
                    conn, "t", [(c, 1, s) for c, s in states.items()], rest=2.0
                )
            stored = conn.execute("SELECT customer_id, state FROM customer_feature_state").fetchall()
    assert written == 1200
    slices = -(-1200 // statestore.SAVE_SLICE_ROWS)
    assert len(rests) == slices  # one rest after each slice
    assert all(seconds > 0 for seconds, _ in rests)
    assert {visible for _, visible in rests} == {0}, "rows showed before the transaction committed"
    assert {c: bytes(s) for c, s in stored} == states


def test_transaction_and_decision_round_trip_through_the_pool(db_url: str) -> None:
    event_time = datetime(2026, 11, 1, 12, 30, tzinfo=UTC)
    pool = create_pool(db_url, max_size=2)
    try:
        with pool.connection() as conn:
            conn.execute(
                """INSERT INTO transactions (transaction_id, event_time, customer_id, merchant_category, amount,
                       currency, channel, transaction_type, is_international)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                ("tx-roundtrip", event_time, "c-1", "grocery", 42.17, "EUR", "POS", "PURCHASE", False),
            )
            conn.execute(
                """INSERT INTO decisions (transaction_id, variant, model_name, model_version, score, threshold,
                       is_fraud, reasons) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
                (
                    "tx-roundtrip",
                    "stable",
                    "card-fraud",
                    "v1",
                    0.73,
                    0.2,
                    True,
                    Jsonb([{"feature": "amount_zscore", "contribution": 1.2}]),
                ),
            )
        with pool.connection() as conn:
            row = conn.execute(
                """SELECT t.event_time, t.amount, d.score, d.reasons FROM transactions t
                   JOIN decisions d USING (transaction_id) WHERE transaction_id = %s""",
                ("tx-roundtrip",),
            ).fetchone()
    finally:
        pool.close()
    assert row is not None
    assert row[0] == event_time
    assert float(row[1]) == 42.17
    assert row[2] == pytest.approx(0.73)
    assert row[3] == [{"feature": "amount_zscore", "contribution": 1.2}]


def test_a_replayed_insert_does_not_duplicate_a_transaction(db_url: str) -> None:
    insert = """INSERT INTO transactions (transaction_id, event_time, merchant_category, amount, currency, channel,
                    transaction_type, is_international)
                VALUES ('tx-replayed', now(), 'fuel', 10, 'EUR', 'POS', 'PURCHASE', false)
                ON CONFLICT (transaction_id) DO NOTHING"""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(insert)
        conn.execute(insert)
        count = conn.execute(
            "SELECT count(*) FROM transactions WHERE transaction_id = 'tx-replayed'"
        ).fetchone()
    assert count == (1,)


def test_a_transaction_has_at_most_one_deciding_decision(db_url: str) -> None:
    insert = """INSERT INTO decisions (transaction_id, variant, model_name, model_version, shadow, score,
                    threshold, is_fraud) VALUES ('tx-one-decision', %s, 'm', 'v', %s, 0.1, 0.2, false)"""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(insert, ("stable", False))
        conn.execute(insert, ("challenger", True))  # a shadow score next to the deciding one is fine
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert, ("canary", False))


def _insert_amount(db_url: str, transaction_id: str, amount: float) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO transactions (transaction_id, event_time, merchant_category, amount, currency, channel,
                   transaction_type, is_international)
               VALUES (%s, now(), 'fuel', %s, 'EUR', 'POS', 'PURCHASE', false)""",
            (transaction_id, amount),
        )


def test_a_negative_amount_is_refused(db_url: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        _insert_amount(db_url, "tx-negative", -5)


def test_a_zero_amount_is_stored(db_url: str) -> None:
    _insert_amount(db_url, "tx-card-verification", 0)  # card-verification authorisations are $0.00
    with psycopg.connect(db_url) as conn:
        stored = conn.execute("SELECT amount FROM transactions WHERE transaction_id = 'tx-card-verification'")
        assert stored.fetchone() == (0,)
