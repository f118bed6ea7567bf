"""Persisting decisions off the response path, without losing them.

Answered decisions go into a bounded queue; a background task writes them to PostgreSQL in batches
(the shared idempotent sink). When the database is slow or down the batch is retried with backoff
and the queue fills; a full queue makes new requests wait (backpressure) instead of dropping
anything. On shutdown the queue is drained before the process exits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from fraudops.sink import Decision, write_batch
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from fraudops_gateway import metrics

log = logging.getLogger(__name__)
FLUSH_ROWS = 500
FLUSH_INTERVAL_S = 0.02


@dataclass
class PendingWrite:
    rows: list[tuple[Any, ...]]
    decisions: list[Decision]


class DecisionWriter:
    def __init__(self, db_url: str, capacity: int) -> None:
        self.db_url = db_url
        self.queue: asyncio.Queue[PendingWrite] = asyncio.Queue(maxsize=capacity)
        self.pending: dict[str, Decision] = {}  # answered, not yet durable: GET /transactions sees them
        self._conn: psycopg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="decision-writer")

    async def submit(self, rows: list[tuple[Any, ...]], decisions: list[Decision]) -> None:
        for decision in decisions:
            if not decision.shadow:
                self.pending[decision.transaction_id] = decision
        await self.queue.put(PendingWrite(rows, decisions))  # waits when full: backpressure, never loss
        metrics.PERSIST_QUEUE.set(self.queue.qsize())

    async def drain_and_stop(self) -> None:
        """Write everything still queued, then stop the writer."""
        self._stopping.set()
        if self._task is not None:
            await self._task
        if self._conn is not None:
            await asyncio.to_thread(self._conn.close)

    async def _run(self) -> None:
        while not (self._stopping.is_set() and self.queue.empty()):
            batch = await self._collect()
            if batch:
                await self._write_with_retries(batch)

    async def _collect(self) -> list[PendingWrite]:
        batch: list[PendingWrite] = []
        rows = 0
        try:
            first = await asyncio.wait_for(self.queue.get(), timeout=0.2)
        except TimeoutError:
            return batch
        batch.append(first)
        rows += len(first.rows)
        deadline = asyncio.get_running_loop().time() + FLUSH_INTERVAL_S
        while rows < FLUSH_ROWS:
            timeout = deadline - asyncio.get_running_loop().time()
            if timeout <= 0:
                break
            try:
                item = await asyncio.wait_for(self.queue.get(), timeout=timeout)
            except TimeoutError:
                break
            batch.append(item)
            rows += len(item.rows)
        return batch

    async def _write_with_retries(self, batch: Sequence[PendingWrite]) -> None:
        rows = [row for item in batch for row in item.rows]
        decisions = [d for item in batch for d in item.decisions]
        alerts = [d for d in decisions if d.is_fraud and not d.shadow]
        async for attempt in AsyncRetrying(retry=retry_if_exception_type(psycopg.OperationalError),
                                           wait=wait_exponential(multiplier=0.1, max=5), reraise=True):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    log.warning("retrying decision write", extra={"attempt": attempt.retry_state.attempt_number})
                await asyncio.to_thread(self._write, rows, decisions, alerts)
        for decision in decisions:
            self.pending.pop(decision.transaction_id, None)
        metrics.PERSISTED.inc(len(rows))
        metrics.PERSIST_QUEUE.set(self.queue.qsize())

    def _write(self, rows: list[tuple[Any, ...]], decisions: list[Decision], alerts: list[Decision]) -> None:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.db_url, connect_timeout=3, autocommit=True)
        try:
            write_batch(self._conn, rows, decisions, alerts)
        except psycopg.OperationalError:
            self._conn.close()
            self._conn = None
            raise
