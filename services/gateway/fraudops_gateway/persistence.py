"""Persisting decisions off the response path, without losing them.

Answered decisions go into a bounded queue; a background task writes them to PostgreSQL in batches
(the shared idempotent sink). Each request's rows are encoded as COPY-ready CSV when it is queued
(~10 µs), and the writer is a coroutine on the event loop with an async connection: a flush costs
the loop a few hundred microseconds of psycopg, at await points. (A writer thread encoding the batch
itself held the GIL for ~3 ms a flush, in slices that stalled the requests behind it: p99 of 25 ms.) When the database is slow or down the batch is retried with backoff
and the queue fills; a full queue makes new requests wait (backpressure) instead of dropping
anything. On shutdown the queue is drained before the process exits.

A row PostgreSQL refuses outright (a constraint, an encoding) is not retried forever and does not
stop the writer: the batch is split into its requests, the others are stored, and each refused
transaction is logged with the database's reason and counted. Request validation is meant to make
that impossible; the metric says whether it does. Anything else that goes wrong while writing is a
bug: the writer runs under `supervise` (reported, not ready, restarted with backoff) and starts
again with the batch it held, so nothing answered is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from opentelemetry.trace import SpanContext
from psycopg_pool import AsyncConnectionPool
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from fraudops.errors import RetryableError
from fraudops.sink import CsvPayloads, Decision, encode_rows, write_payloads_async
from fraudops_gateway import metrics
from fraudops_gateway.supervision import BackgroundHealth, supervise
from fraudops_gateway.tracing import current_context, write_spans

log = logging.getLogger(__name__)
FLUSH_ROWS = 500
# A flush costs a few ms of CPU (shared with the requests) and a commit; every 100 ms it stays
# under 1% of a core at 500 requests/s. SIGTERM drains the queue; a kill -9 loses what it holds.
FLUSH_INTERVAL_S = 0.1
DRAIN_TIMEOUT_S = 60.0
#: A flush waits this long for a pooled connection before it counts as "database unavailable" (retried).
POOL_WAIT_S = 5.0
TASK = "decision-writer"


@dataclass
class PendingWrite:
    """One request's transactions and decisions (deciding and shadow), encoded for COPY."""

    payloads: CsvPayloads
    decisions: list[Decision]
    rows: int
    trace_context: SpanContext | None = None  # the request's span, when traced: the write joins its trace


@dataclass
class PendingDecision:
    """An answered decision not yet in PostgreSQL, with the shadow scores of its transaction."""

    deciding: Decision
    shadow_scores: dict[str, float] = field(default_factory=dict)


class DecisionWriter:
    def __init__(self, pool: AsyncConnectionPool, capacity: int, health: BackgroundHealth) -> None:
        self.pool = pool
        self.health = health
        self.queue: asyncio.Queue[PendingWrite] = asyncio.Queue(maxsize=capacity)
        # Answered, not yet durable: GET /transactions sees them.
        self.pending: dict[str, PendingDecision] = {}
        self._in_hand: list[PendingWrite] = []  # taken from the queue, not yet stored
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(supervise(TASK, self._run, self.health), name=TASK)

    async def submit(self, rows: list[tuple[Any, ...]], decisions: list[Decision]) -> None:
        """Queue one request's decisions; returns once they are queued (waits while the queue is full)."""
        if self._task is None or self._task.done() or self._stopping.is_set():
            raise RetryableError("the decision writer is not running; the gateway is stopping or broken")
        for decision in decisions:
            if not decision.shadow:
                self.pending[decision.transaction_id] = PendingDecision(decision)
        for decision in decisions:
            if decision.shadow and decision.transaction_id in self.pending:
                self.pending[decision.transaction_id].shadow_scores[decision.variant] = decision.score
        alerts = [d for d in decisions if d.is_fraud and not d.shadow]
        pending = PendingWrite(encode_rows(rows, decisions, alerts), decisions, len(rows), current_context())
        await self.queue.put(pending)  # waits when full: backpressure, never loss
        metrics.PERSIST_QUEUE.set(self.queue.qsize())

    async def drain_and_stop(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """Write everything still queued, then stop the writer (giving up loudly after `timeout_s`)."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=timeout_s)
            except TimeoutError:
                log.error(
                    "could not store every answered decision before stopping",
                    extra={"unstored_transactions": len(self.pending), "timeout_s": timeout_s},
                )

    async def _run(self) -> None:
        while self._in_hand or not (self._stopping.is_set() and self.queue.empty()):
            if not self._in_hand:  # else: a batch a failed run left behind, written first
                try:
                    first = await asyncio.wait_for(self.queue.get(), timeout=0.2)
                except TimeoutError:
                    continue
                if not self._stopping.is_set():  # let a batch gather: one database transaction for many
                    await asyncio.sleep(FLUSH_INTERVAL_S)
                self._in_hand, rows = [first], first.rows
                while rows < FLUSH_ROWS and not self.queue.empty():
                    item = self.queue.get_nowait()
                    self._in_hand.append(item)
                    rows += item.rows
            await self._write_with_retries(self._in_hand)
            self._in_hand = []
            self.health.recovered(TASK)
            metrics.PERSIST_QUEUE.set(self.queue.qsize())

    async def _write_with_retries(self, batch: Sequence[PendingWrite]) -> None:
        """Write a batch, retrying while the database is unavailable; isolate rows it refuses."""
        try:
            await self._retrying(batch)
        except (psycopg.Error, ValueError) as exc:  # refused, not unavailable: find the refused request(s)
            log.warning(
                "the database refused a batch of decisions; storing its requests one by one",
                extra={"error": str(exc)},
            )
            for item in batch:
                try:
                    await self._retrying([item])
                except (psycopg.Error, ValueError) as refused:
                    ids = sorted({d.transaction_id for d in item.decisions})
                    log.error(
                        "decision not stored: the database refused it",
                        extra={"transaction_ids": ids, "error": str(refused)},
                    )
                    metrics.PERSIST_FAILED.inc(item.rows)
                    self._forget(item.decisions)

    async def _retrying(self, batch: Sequence[PendingWrite]) -> None:
        payloads = CsvPayloads.join(item.payloads for item in batch)
        decisions = [d for item in batch for d in item.decisions]
        rows = sum(item.rows for item in batch)
        started = time.monotonic()
        started_ns = time.time_ns()
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(psycopg.OperationalError),
            wait=wait_exponential(multiplier=0.1, max=5),
            reraise=True,
        ):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    log.warning(
                        "retrying decision write",
                        extra={
                            "attempt": attempt.retry_state.attempt_number,
                            "rows": rows,
                            "waiting_s": round(time.monotonic() - started, 1),
                        },
                    )
                await self._write(payloads)
        if any(item.trace_context is not None for item in batch):
            write_spans((item.trace_context for item in batch), started_ns, rows)
        self._forget(decisions)
        metrics.PERSISTED.inc(rows)

    def _forget(self, decisions: Sequence[Decision]) -> None:
        for decision in decisions:
            self.pending.pop(decision.transaction_id, None)

    async def _write(self, payloads: CsvPayloads) -> None:
        # A connection broken meanwhile raises OperationalError (retried); the pool replaces it.
        async with self.pool.connection(timeout=POOL_WAIT_S) as conn:
            await write_payloads_async(conn, payloads)
