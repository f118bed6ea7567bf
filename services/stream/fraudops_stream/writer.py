"""The batch writer: store → publish → confirm deliveries, for one consumed batch at a time.

    store     transactions, decisions and alerts in PostgreSQL (idempotent; waits out an outage);
              a batch PostgreSQL refuses is split in halves until the refused records are alone,
              and those are dead-lettered with PostgreSQL's reason: no record can stop a partition
    publish   the batch's dead letters and the alerts of the stored decisions
    confirm   every one delivered (`Publisher`), or produced again until it is

It runs on a thread of its own while the consumer featurises and scores the next batch. It never
touches the Kafka consumer: the consumer commits the batch's offsets on its own thread once `write`
has returned. (Committing from here deadlocked: a commit waited for the consumer's thread while that
thread, inside a rebalance callback, waited for this batch to be written.)
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Message
from opentelemetry.trace import SpanKind
from psycopg_pool import ConnectionPool
from tenacity import RetryCallState, retry_if_exception_type

from fraudops.decision import Decision, alert_message
from fraudops.errors import RetryableError
from fraudops.sink import write_batch
from fraudops.tracing import postgres_attributes
from fraudops_stream import metrics
from fraudops_stream.delivery import Outgoing, Publisher, dead_letter
from fraudops_stream.retrying import waited_out
from fraudops_stream.tracing import BatchTrace

log = logging.getLogger(__name__)

#: PostgreSQL's COPY context names the column of a refused value ("COPY transactions, line 3, column x: ...").
_COPY_COLUMN = re.compile(r"column (\w+)")


@dataclass
class Batch:
    """What one consumed batch leaves to make durable."""

    offsets: dict[int, int]  # partition -> the next offset, committed once everything below is durable
    transactions: pa.Table | None = None  # the live (not replayed) records' rows
    decisions: pa.Table | None = None
    alerts: list[Decision] = field(default_factory=list)
    dead_letters: list[Outgoing] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)  # the live records, in the order of the rows
    trace: BatchTrace | None = None  # the spans of the batch's sampled records (None: none sampled)


@dataclass(frozen=True)
class Refused:
    """A record PostgreSQL would not store, and why."""

    transaction_id: str
    partition: int
    offset: int
    reason: str
    field: str


def refusal(exc: psycopg.Error) -> tuple[str, str]:
    """(reason, field) from PostgreSQL's error: the column when it says one, else the constraint's column."""
    diag = exc.diag
    column = diag.column_name
    if column is None and diag.context:
        match = _COPY_COLUMN.search(diag.context)
        column = match.group(1) if match else None
    if column is None and diag.constraint_name and diag.table_name:
        column = diag.constraint_name.removeprefix(f"{diag.table_name}_").removesuffix("_check")
    column = column or "record"
    return f"{column}: refused by PostgreSQL: {diag.message_primary or exc}", column


def store_isolating(
    write: Callable[[pa.Table, pa.Table, list[Decision]], None],
    rows: pa.Table,
    decisions: pa.Table,
    alerts: list[Decision],
) -> list[Refused]:
    """Store the batch; when PostgreSQL refuses it, store each half alone, down to single records.

    A refused record costs about 2·log2(batch) extra writes, and only when there is one: the common
    batch is one write. Returns the records that stayed refused.
    """
    try:
        write(rows, decisions, alerts)
        return []
    except (psycopg.DataError, psycopg.IntegrityError) as exc:  # a replay's duplicates never get here
        if rows.num_rows == 1:
            reason, column = refusal(exc)
            return [
                Refused(
                    rows["transaction_id"][0].as_py(),
                    rows["kafka_partition"][0].as_py(),
                    rows["kafka_offset"][0].as_py(),
                    reason,
                    column,
                )
            ]
    half = rows.num_rows // 2
    refused: list[Refused] = []
    for part in (rows.slice(0, half), rows.slice(half)):
        ids = part["transaction_id"]
        ids_set = set(ids.to_pylist())
        refused += store_isolating(
            write,
            part,
            decisions.filter(pc.is_in(decisions["transaction_id"], ids)),
            [a for a in alerts if a.transaction_id in ids_set],
        )
    return refused


class BatchWriter:
    """Makes one batch durable end to end, so that its offsets may be committed (see the module docstring)."""

    def __init__(
        self,
        pool: ConnectionPool,
        publisher: Publisher,
        alerts_topic: str,
        dlq_topic: str,
        stopping: Callable[[], bool],
        max_wait_s: float = 5.0,
    ) -> None:
        self.pool = pool
        self.publisher = publisher
        self.alerts_topic = alerts_topic
        self.dlq_topic = dlq_topic
        self.stopping = stopping
        self.max_wait_s = max_wait_s

    def write(self, batch: Batch) -> None:
        """Store, publish, confirm. RetryableError when stopping before the batch is durable."""
        try:
            self._write_batch(batch)
        finally:
            if batch.trace is not None:
                batch.trace.end()

    def _write_batch(self, batch: Batch) -> None:
        started = time.perf_counter()
        refused: list[Refused] = []
        if batch.transactions is not None and batch.decisions is not None and batch.transactions.num_rows:
            refused = self._store(batch.transactions, batch.decisions, batch.alerts)
            if batch.trace is not None:
                batch.trace.stage(
                    "COPY decisions",
                    started,
                    time.perf_counter(),
                    SpanKind.CLIENT,
                    postgres_attributes("COPY", "decisions", batch_size=batch.decisions.num_rows),
                )
        outgoing = list(batch.dead_letters)
        alerts = batch.alerts
        if refused:
            by_position = {(m.partition(), m.offset()): m for m in batch.messages}
            outgoing += [
                dead_letter(by_position[(r.partition, r.offset)], r.reason, r.field, self.dlq_topic)
                for r in refused
            ]
            gone = {r.transaction_id for r in refused}
            alerts = [a for a in alerts if a.transaction_id not in gone]
            metrics.DEAD_LETTERED.inc(len(refused))
            log.warning(
                "records refused by PostgreSQL sent to the DLQ",
                extra={"records": len(refused), "first_reason": refused[0].reason},
            )
        # At-least-once, keyed by transaction id: a replay may repeat an alert; readers dedupe by key.
        outgoing += [self._alert(a, batch.trace) for a in alerts]
        self.publisher.publish(outgoing, self.stopping)
        metrics.ALERTS.inc(len(alerts))
        metrics.STAGE.labels("store").observe(time.perf_counter() - started)
        metrics.observe_end_to_end(batch.messages)

    def _alert(self, alert: Decision, trace: BatchTrace | None) -> Outgoing:
        """The alert's record; for a sampled transaction, with its send span's context in the headers."""
        headers = trace.alert_headers(alert.transaction_id, self.alerts_topic) if trace is not None else None
        return Outgoing(self.alerts_topic, alert.transaction_id, alert_message(alert), headers or [])

    def _store(self, rows: pa.Table, decisions: pa.Table, alerts: list[Decision]) -> list[Refused]:
        """Store with the refused records isolated; while PostgreSQL is unreachable, wait and retry."""

        def attempt() -> list[Refused]:
            try:
                # A short wait for a connection: while PostgreSQL is down, a stop request is heard between tries.
                with self.pool.connection(timeout=5) as conn:
                    return store_isolating(
                        lambda r, d, a: self._write(conn, r, d, a), rows, decisions, alerts
                    )
            except psycopg.OperationalError as exc:  # the pool drops the broken connection
                raise RetryableError(f"database unavailable: {str(exc)[:200]}") from exc

        def report(state: RetryCallState) -> None:
            metrics.DB_RETRIES.inc()
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                "database unavailable; retrying the batch",
                extra={
                    "error": str(error),
                    "retry_in_s": round(state.next_action.sleep, 2) if state.next_action else None,
                },
            )

        return waited_out(
            attempt, retry_if_exception_type(RetryableError), self.stopping, report, self.max_wait_s
        )

    @staticmethod
    def _write(conn: psycopg.Connection, rows: pa.Table, decisions: pa.Table, alerts: list[Decision]) -> None:
        write_batch(conn, rows, decisions, alerts)
