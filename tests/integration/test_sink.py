"""The shared PostgreSQL sink: batches land once, replays change nothing, alerts follow deciding frauds."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from fraudops import sink
from fraudops.db import migrate
from fraudops.decision import decisions_table
from fraudops.schema import Transaction
from fraudops.sink import Decision, transaction_row, write_batch

pytestmark = pytest.mark.integration


def _batch(prefix: str, n: int) -> tuple[list[tuple], list[Decision], list[Decision]]:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    txs = [
        Transaction(
            transaction_id=f"{prefix}-{i}",
            customer_id=f"c{i % 3}",
            amount=10.5 + i,
            event_time=now,
            channel="WEB",
            device_id="d1",
            latitude=52.5,
            longitude=13.4,
        )
        for i in range(n)
    ]
    rows = [
        transaction_row(tx.model_dump(mode="json"), "stream", partition=2, offset=i)
        for i, tx in enumerate(txs)
    ]
    decisions = [
        Decision(
            tx.transaction_id,
            "stable",
            "card-fraud",
            "v1",
            False,
            0.9 if i % 4 == 0 else 0.01,
            0.2,
            i % 4 == 0,
            [{"feature": "amount", "contribution": 0.5}],
            1.5,
            "stream",
            now,
            tx.customer_id,
        )
        for i, tx in enumerate(txs)
    ]
    shadows = [
        Decision(
            tx.transaction_id,
            "challenger",
            "card-fraud",
            "v2",
            True,
            0.5,
            0.2,
            True,
            [],
            1.0,
            "stream",
            now,
            tx.customer_id,
        )
        for tx in txs
    ]
    return rows, decisions + shadows, [d for d in decisions if d.is_fraud]


def test_a_batch_is_stored_once_even_when_written_twice(scratch_database: str) -> None:
    migrate.upgrade(scratch_database)
    rows, decisions, alerts = _batch("tx", 40)
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        first = write_batch(conn, rows, decisions, alerts)
        replay = write_batch(conn, rows, decisions, alerts)
        counts = conn.execute(
            """SELECT (SELECT count(*) FROM transactions), (SELECT count(*) FROM decisions),
                      (SELECT count(*) FROM decisions WHERE shadow), (SELECT count(*) FROM alerts),
                      (SELECT sum(amount) FROM transactions)"""
        ).fetchone()
    assert (first.transactions, first.decisions, first.alerts) == (40, 80, 10)
    assert (replay.transactions, replay.decisions, replay.alerts) == (0, 0, 0)
    assert counts[:4] == (40, 80, 40, 10)
    assert float(counts[4]) == pytest.approx(sum(10.5 + i for i in range(40)))


ALERT_ROW = """SELECT transaction_id, customer_id, score, threshold, model_name, model_version, variant, reasons,
                      created_at, status FROM alerts ORDER BY transaction_id"""


def test_alerts_taken_from_the_batchs_decisions_table_are_stored_as_built_from_their_objects(
    scratch_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream hands the sink its decisions as one table: the alerts' rows come from it (the deciding
    rows only: the shadow variant scored the same transactions as fraud too), equal to the objects' rows."""
    migrate.upgrade(scratch_database)
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        rows, decisions, alerts = _batch("objects", 40)
        assert write_batch(conn, rows, decisions, alerts).alerts == 10
        rows, decisions, alerts = _batch("table", 40)
        table = decisions_table(decisions)

        def built_again(_: object) -> None:
            raise AssertionError("the alerts' rows were built again from their objects")

        monkeypatch.setattr(sink, "decisions_table", built_again)
        assert write_batch(conn, rows, table, alerts).alerts == 10
        stored = conn.execute(ALERT_ROW).fetchall()
    by_batch: dict[str, list[tuple]] = {"objects": [], "table": []}
    for transaction_id, *fields in stored:
        prefix, number = transaction_id.split("-")
        by_batch[prefix].append((int(number), *fields))
    assert len(by_batch["table"]) == 10
    assert sorted(by_batch["table"]) == sorted(by_batch["objects"])
    assert {row[6] for row in by_batch["table"]} == {"stable"}  # never the shadow's row


def test_an_alert_the_decisions_table_does_not_hold_is_built_from_its_object(scratch_database: str) -> None:
    migrate.upgrade(scratch_database)
    rows, decisions, alerts = _batch("apart", 8)
    # the alerts' own deciding rows left out of the table
    deciding = decisions_table([d for d in decisions if not d.is_fraud or d.shadow])
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        write_batch(conn, rows, deciding, alerts)
        stored = conn.execute(ALERT_ROW).fetchall()
    assert [row[0] for row in stored] == sorted(a.transaction_id for a in alerts)
    assert [(row[2], row[6]) for row in stored] == [(pytest.approx(0.9), "stable")] * len(alerts)


def test_the_sink_refuses_a_connection_whose_commit_it_does_not_control(scratch_database: str) -> None:
    rows, decisions, _ = _batch("tx", 1)
    with psycopg.connect(scratch_database) as conn, pytest.raises(ValueError, match="autocommit"):
        write_batch(conn, rows, decisions)


def test_a_failed_batch_leaves_nothing_behind(scratch_database: str) -> None:
    migrate.upgrade(scratch_database)
    rows, decisions, _ = _batch("bad", 5)
    broken = [*rows[:4], (*rows[4][:8], -1, *rows[4][9:])]  # a negative amount violates the CHECK
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            write_batch(conn, broken, decisions)
        assert conn.execute("SELECT count(*) FROM transactions").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM decisions").fetchone() == (0,)
