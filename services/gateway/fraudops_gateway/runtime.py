"""The gateway's scoring runtime: customer state, features, routing and scoring on one worker thread.

The feature engine is not thread-safe and its state must move in request order, so all of it runs
on a single dedicated thread: requests queue there in arrival order and the event loop stays free.
A customer's state comes from the store the stream consumer writes (re-read after
STATE_REFRESH_S) and is advanced by the transactions the gateway itself scores in between.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from fraudops import statestore
from fraudops.config import Settings
from fraudops.features.encode import encode_transactions
from fraudops.features.engine import FeatureEngine
from fraudops.routing import RoutingTable, load_routing_table
from fraudops.schema import Transaction
from fraudops.sink import Decision, transaction_row
from fraudops.variants import Decided, Decider

log = logging.getLogger(__name__)


@dataclass
class Scored:
    transactions: list[Transaction]
    decided: Decided
    rows: list[tuple[Any, ...]]  # sink rows of the transactions
    elapsed_ms: float


def initial_routing_table(settings: Settings) -> RoutingTable:
    if settings.routing_table_path:
        return load_routing_table(settings.routing_table_path)
    return RoutingTable.single(model_version="local", model_uri=settings.model_path)


class GatewayRuntime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = FeatureEngine()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring")
        self.decider: Decider | None = None
        self.routing_mtime: float | None = None
        self._state_loaded_at: dict[str, float] = {}
        self._db: psycopg.Connection | None = None
        self._labels_cursor = None
        self.threshold_override = settings.fraud_threshold if "fraud_threshold" in settings.model_fields_set else None

    # --- lifecycle (on the scoring thread) ---------------------------------------------------------

    async def start(self) -> None:
        await self._run(self._load_routing)

    async def stop(self) -> None:
        await self._run(self._close)
        self.executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()

    async def _run(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    def _load_routing(self) -> None:
        table = initial_routing_table(self.settings)
        self.decider = Decider.from_table(table, source="api", threshold_override=self.threshold_override)
        path = self.settings.routing_table_path
        self.routing_mtime = path.stat().st_mtime if path else None
        log.info("routing table loaded", extra={"variants": [v.name for v in table.variants]})

    async def reload_routing_if_changed(self) -> bool:
        path: Path | None = self.settings.routing_table_path
        if path is None or not path.exists() or path.stat().st_mtime == self.routing_mtime:
            return False
        await self._run(self._load_routing)
        return True

    # --- the database connection of the scoring thread ------------------------------------------------

    def _conn(self) -> psycopg.Connection | None:
        """The scoring thread's own connection; None (and features from local state only) when down."""
        if self._db is None or self._db.closed or self._db.broken:
            try:
                self._db = psycopg.connect(self.settings.db_url, autocommit=True, connect_timeout=2)
            except psycopg.OperationalError as exc:
                log.warning("state store unreachable; using local state", extra={"error": str(exc)})
                self._db = None
        return self._db

    def _refresh_state(self, customer_ids: Sequence[str | None]) -> None:
        now = time.monotonic()
        stale = [c for c in {c for c in customer_ids if c}
                 if now - self._state_loaded_at.get(c, -1e18) > self.settings.state_refresh_s]
        if not stale:
            return
        conn = self._conn()
        if conn is None:
            return
        try:
            rows = statestore.load_customers(conn, stale)
        except psycopg.Error as exc:
            log.warning("could not read stored customer state", extra={"error": str(exc)})
            return
        self.engine.import_customers(rows)
        for customer_id in stale:
            self._state_loaded_at[customer_id] = now

    def poll_labels(self) -> int:
        """Feed newly confirmed fraud labels into the label-risk features; returns how many."""
        conn = self._conn()
        if conn is None:
            return 0
        events, self._labels_cursor = statestore.fetch_fraud_labels(conn, self._labels_cursor)
        self.engine.add_fraud_labels(events)
        return len(events)

    # --- scoring -------------------------------------------------------------------------------

    async def score(self, transactions: list[Transaction], explain: bool) -> Scored:
        return await self._run(self._score, transactions, explain)

    def _score(self, transactions: list[Transaction], explain: bool) -> Scored:
        assert self.decider is not None, "start() loads the routing table first"
        started = time.perf_counter()
        customer_ids = [tx.customer_id for tx in transactions]
        self._refresh_state(customer_ids)
        features = self.engine.transform(encode_transactions(transactions))
        decided = self.decider.decide(features, [tx.transaction_id for tx in transactions], customer_ids,
                                      explain_all=explain)
        rows = [transaction_row(tx.model_dump(mode="json"), "api") for tx in transactions]
        return Scored(transactions, decided, rows, (time.perf_counter() - started) * 1000)

    @property
    def ready(self) -> bool:
        return self.decider is not None


def deciding_by_transaction(decided: Decided) -> dict[str, Decision]:
    return {decision.transaction_id: decision for decision in decided.deciding}
