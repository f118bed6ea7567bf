"""The gateway's scoring runtime: customer state, features, routing and scoring.

Features and embedded scoring run right on the event loop: for one transaction they take tens of
microseconds (fast encode, compiled kernel, compiled trees), less than handing the work to a
thread and back, and the event loop being the only thread that touches the feature engine keeps
each customer's state moving in request order without locks. Nothing on the loop blocks: the
state store is read with async psycopg, a remote KServe variant is called from worker threads,
and label polling turns the rows it reads into events on a worker thread. A /predict/batch call
is decided in one piece (~10 µs a transaction), so its transactions keep their order too.

A customer's state comes from the store the stream consumer writes and is advanced by the
transactions the gateway itself scores in between. The first request of a customer waits for its
stored state (one coalesced read for every customer first seen meanwhile); after that a background
poll every STATE_REFRESH_S lists the stored states that changed and re-reads only those of
customers the gateway holds, so a steady request never waits for the database and an unchanged
store costs one small query per poll instead of a read per customer. While the store is
unreachable the gateway scores from the state it holds and retries later. Every database access
goes through the gateway's one connection pool; the background reads run under `supervise`.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from fraudops import entitystore, statestore
from fraudops.config import Settings
from fraudops.errors import ConfigurationError, RetryableError
from fraudops.extras import NO_EXTRA_FIELDS, ExtraFields
from fraudops.features.encode import SMALL_BATCH, encode_transactions
from fraudops.features.engine import FeatureEngine
from fraudops.features.spec import FEATURE_VERSION, FeatureConfig
from fraudops.routing import RoutingTable, load_routing_table
from fraudops.schema import Transaction
from fraudops.sink import transaction_row
from fraudops.tracing import traced
from fraudops.variants import Decided, Decider, RemoteScorer
from fraudops_gateway import metrics
from fraudops_gateway.supervision import BackgroundHealth, supervise
from fraudops_gateway.tracing import TRACER

log = logging.getLogger(__name__)
#: After a failed read of the state store, score from local state for this long before trying again.
STORE_RETRY_S = 2.0
#: The longest a request waits for its customers' stored state.
STATE_READ_WAIT_S = 0.5
#: The longest a background read waits for a pooled connection.
POOL_WAIT_S = 2.0
#: A state stored by a database transaction that began this long before a poll, and committed after
#: it, is still found by the next poll (the polls overlap by this much).
STATE_POLL_OVERLAP = timedelta(seconds=60)
_CHANGED_SQL = """SELECT now(), array_agg(customer_id), array_agg(updated_at) FROM customer_feature_state
                  WHERE updated_at > %s AND feature_version = %s"""


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


def warm_up(decider: Decider, engine: FeatureEngine) -> None:
    """Run every code path a request takes (JIT kernels, the first booster calls, reason codes), so that
    none of it lands on a client's request. Anonymous transactions read no customer state and write
    none, so the engine is left as it was (apart from label events that were due anyway)."""
    one = [Transaction(transaction_id="warm-up", amount=42.0)]
    many = [Transaction(transaction_id=f"warm-up-{i}", amount=1.0 + i) for i in range(SMALL_BATCH + 1)]
    for transactions, explain in ((one, True), (many, False)):
        features = engine.transform(encode_transactions(transactions))
        ids = [tx.transaction_id for tx in transactions]
        decider.decide(
            features, ids, [tx.customer_id for tx in transactions], explain_all=explain, monitored=False
        )
    for transaction in one + many:
        transaction_row(transaction.model_dump(mode="json"), "api")


def _file_identity(path: Path | None) -> tuple[int, int, int] | None:
    """Changes whenever the file is rewritten or swapped (a ConfigMap update swaps a symlink)."""
    if path is None or not path.exists():
        return None
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_ino, stat.st_size


class GatewayRuntime:
    def __init__(self, settings: Settings, pool: AsyncConnectionPool, health: BackgroundHealth) -> None:
        self.settings = settings
        self.pool = pool
        self.health = health
        self.engine = FeatureEngine()
        self.decider: Decider | None = None
        self.scores_remotely = False
        self.routing_identity: tuple[int, int, int] | None = None
        self.threshold_override = settings.fraud_threshold  # None: each model's own threshold
        # customer → time of the stored state last imported (None: nothing stored when it was read),
        # in order of last use: the least recently seen customers are dropped beyond the bound.
        self._stored_at: dict[str, datetime | None] = {}
        self._changes_since: datetime | None = None
        self._loading: dict[str, asyncio.Future[None]] = {}
        self._next_read: tuple[set[str], asyncio.Future[None]] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._store_down_until = 0.0
        self._labels_cursor: datetime | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the routing table (and its models; warming every code path a request takes), then start
        the poll clock.

        A remote variant's model server that does not answer yet is no reason to exit: in a cluster it
        starts together with the gateway (the operator writes the routing table and creates the
        InferenceService at once), and exiting only gets the pod restarted. The gateway starts not
        ready instead (`/health/ready` says so) and the routing refresh loads the table once it answers.
        """
        try:
            await self.reload_routing()
        except RetryableError as exc:
            log.warning(
                "routing table not loaded: a model server does not answer yet; not ready until it does",
                extra={"error": str(exc)},
            )
        try:  # start the poll clock (and find out whether the database is there)
            await self.poll_changed_state()
            if self.settings.entity_table:  # the first requests already read the published entity table
                await self.poll_entity_table()
            self.health.database_reachable = True
        except psycopg.Error as exc:
            self.health.database_reachable = False
            log.warning(
                "state store unreachable at start; scoring from local state until it is back",
                extra={"error": str(exc)},
            )
        # Everything loaded so far lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise walk it every few thousand requests.
        gc.collect()
        gc.freeze()

    async def stop(self) -> None:
        """Let a state read in flight finish (it holds a pooled connection)."""
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=POOL_WAIT_S + STORE_RETRY_S)

    @property
    def ready(self) -> bool:
        return self.decider is not None

    @property
    def extra_fields(self) -> ExtraFields:
        """The extra fields the served models read (validated and documented; most deployments: none)."""
        return self.decider.extra_fields if self.decider is not None else NO_EXTRA_FIELDS

    @property
    def routing_summary(self) -> str:
        """The live routing table in one line: `name:mode:weight` per variant."""
        if self.decider is None:
            return "not loaded"
        return ", ".join(f"{v.name}:{v.mode}:{v.weight:g}" for v in self.decider.table.variants)

    # --- routing -------------------------------------------------------------------------------------

    async def reload_routing(self) -> None:
        """Build the Decider for the current table off the loop (artifacts load, remote variants answer)."""
        identity = _file_identity(self.settings.routing_table_path)
        table = await asyncio.to_thread(initial_routing_table, self.settings)
        # Reason codes are XGBoost's approximate contributions (Saabas, pred_contribs with approx_contribs):
        # exact TreeSHAP costs ~12 ms a row on a 400-tree model, more than the whole p99 budget of a
        # request. The KServe predictor gives exact TreeSHAP on request.
        decider = await asyncio.to_thread(
            Decider.from_table, table, "api", self.threshold_override, exact_reasons=False
        )
        decider.refuse_without_entity_table(self.settings.entity_table)  # before it replaces the one serving
        trained_with = decider.feature_config()
        if trained_with is not None and trained_with != self.engine.config:
            self.engine.configure(trained_with)
            self.engine.entity_mirror = None  # the next poll attaches the published table if it fits
        if self.decider is None:
            # The slow part (compiling the kernels, once per process) off the loop on an engine of its
            # own, so that /health/live and the background polls go on: under a small CPU share it takes
            # minutes, longer than a liveness probe waits. Then, quickly, on the loop and the runtime's
            # own engine, where requests will run.
            await asyncio.to_thread(warm_up, decider, FeatureEngine())
            warm_up(decider, self.engine)
        if self.decider is not None:
            decider.take_over_monitors(self.decider)
        self.decider = decider
        self.scores_remotely = any(isinstance(scorer, RemoteScorer) for scorer in decider.scorers.values())
        self.routing_identity = identity
        log.info("routing table loaded", extra={"variants": self.routing_summary})

    async def reload_routing_if_changed(self) -> bool:
        """Reload when the operator wrote a new table, or while none could be loaded yet."""
        identity = _file_identity(self.settings.routing_table_path)
        if identity is None or (self.decider is not None and identity == self.routing_identity):
            return False
        await self.reload_routing()
        return True

    # --- customer state -------------------------------------------------------------------------------

    async def _refresh_state(self, customer_ids: Sequence[str | None]) -> None:
        """Make sure the stored state of customers seen for the first time has been read.

        Reads are coalesced: while one query runs, newly seen customers queue for the next one, so
        under load one query serves many requests. Requests for the same customer wait for the
        same read and resume in arrival order. A read slower than STATE_READ_WAIT_S is not waited
        for (the request scores from local state; the stored state lands when it arrives).
        """
        self._seen(customer_ids)
        new = {c for c in customer_ids if c and c not in self._stored_at}
        if not new or time.monotonic() < self._store_down_until:
            return
        reads = {self._loading.get(c) or self._queue_read(c) for c in new}
        done, _ = await asyncio.wait(reads, timeout=STATE_READ_WAIT_S)
        if len(done) < len(reads):
            log.warning("state store slow; scoring from local state", extra={"customers": len(new)})

    def _seen(self, customer_ids: Sequence[str | None]) -> None:
        """Mark customers as just used; beyond GATEWAY_MAX_CUSTOMERS drop the least recently used
        tenth (their rows are reused; coming back, a customer's state is read from the store again)."""
        stored_at = self._stored_at
        for customer_id in customer_ids:
            if customer_id in stored_at:
                stored_at[customer_id] = stored_at.pop(customer_id)  # to the end: most recently used
        limit = self.settings.gateway_max_customers
        if len(stored_at) + len(self._loading) <= limit:
            return
        excess = len(stored_at) + len(self._loading) - limit + limit // 10
        current = set(customer_ids)
        victims = [c for c in itertools.islice(stored_at, excess + len(current)) if c not in current][:excess]
        for customer_id in victims:
            del stored_at[customer_id]
        self.engine.forget(victims)
        metrics.CUSTOMERS_DROPPED.inc(len(victims))

    def _queue_read(self, customer_id: str) -> asyncio.Future[None]:
        if self._next_read is None:
            self._next_read = (set(), asyncio.get_running_loop().create_future())
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(
                    supervise("state-reads", self._read_queued, self.health), name="state-reads"
                )
        customers, read = self._next_read
        customers.add(customer_id)
        self._loading[customer_id] = read
        return read

    async def _read_queued(self) -> None:
        while self._next_read is not None:
            customers, read = self._next_read
            self._next_read = None
            try:
                rows = await self._fetch_customers(sorted(customers))
                self.health.database_reachable = True
                self._import(rows)
                for customer_id in customers:
                    self._stored_at.setdefault(customer_id, None)
            except psycopg.Error as exc:
                self._store_down_until = time.monotonic() + STORE_RETRY_S
                self.health.database_reachable = False
                log.warning("state store unreadable; scoring from local state", extra={"error": str(exc)})
            finally:
                for customer_id in customers:
                    self._loading.pop(customer_id, None)
                read.set_result(None)

    def _import(self, rows: list[tuple[str, bytes, datetime]]) -> None:
        """Load stored states into the engine (on the loop); a state it cannot read is reported and skipped."""
        try:
            self.engine.import_customers([(customer_id, state) for customer_id, state, _ in rows])
        except ConfigurationError:  # checked before anything is loaded: find the state(s) it refused
            rows = [row for row in rows if self._importable(row)]
        for customer_id, _, updated_at in rows:
            self._stored_at[customer_id] = updated_at

    def _importable(self, row: tuple[str, bytes, datetime]) -> bool:
        customer_id, state, updated_at = row
        try:
            self.engine.import_customers([(customer_id, state)])
        except ConfigurationError as exc:
            # Not read again until the consumer stores a new state: the customer scores from what this
            # gateway holds meanwhile.
            self._stored_at[customer_id] = updated_at
            log.error(
                "stored feature state unreadable; scoring the customer from local state",
                extra={"customer_id": customer_id, "error": str(exc)},
            )
            metrics.STATE_REFUSED.inc()
            return False
        return True

    async def _fetch_customers(self, customer_ids: list[str]) -> list[tuple[str, bytes, datetime]]:
        """Customers' stored states with each state's time, on the event loop (a pooled async connection)."""
        async with self.pool.connection(timeout=POOL_WAIT_S) as connection:
            cursor = await connection.execute(statestore.LOAD_CUSTOMERS_SQL, (customer_ids, FEATURE_VERSION))
            rows = await cursor.fetchall()
        return [(customer_id, bytes(state), updated_at) for customer_id, state, updated_at in rows]

    async def poll_changed_state(self, chunk: int = 2000) -> int:
        """Re-read the stored states that changed since the last poll, of customers this gateway holds.

        Returns how many customers' states were replaced.
        """
        since = self._changes_since or datetime.fromtimestamp(0).astimezone()
        async with self.pool.connection(timeout=POOL_WAIT_S) as connection:
            cursor = await connection.execute(_CHANGED_SQL, (since, FEATURE_VERSION))
            now, customers, times = await cursor.fetchone()  # type: ignore[misc]
        first_poll = self._changes_since is None
        self._changes_since = now - STATE_POLL_OVERLAP
        if first_poll or not customers:  # at start nothing is held yet: this poll only sets the clock
            return 0
        stale = [
            c
            for c, at in zip(customers, times, strict=True)
            if c in self._stored_at
            and (self._stored_at[c] is None or at > self._stored_at[c])
            and c not in self._loading
        ]
        for start in range(0, len(stale), chunk):
            self._import(await self._fetch_customers(stale[start : start + chunk]))
        metrics.STATE_REFRESHED.inc(len(stale))
        return len(stale)

    async def poll_labels(self) -> int:
        """Feed newly confirmed fraud labels into the label-risk features; returns how many."""
        async with self.pool.connection(timeout=POOL_WAIT_S) as connection:
            cursor = await connection.execute(statestore.FRAUD_LABELS_SQL, {"after": self._labels_cursor})
            rows = await cursor.fetchall()
        # Hashing the keys is NumPy work over every label at the first poll: off the loop.
        events, self._labels_cursor = await asyncio.to_thread(
            statestore.fraud_label_events, rows, self._labels_cursor
        )
        self.engine.add_fraud_labels(events)
        return len(events)

    # --- background refreshes (each runs under `run_every`; the failures they expect end here) ----

    async def refresh_routing(self) -> None:
        """A new routing table when the operator wrote one; one that cannot be used leaves the current one."""
        try:
            await self.reload_routing_if_changed()
        except (ConfigurationError, RetryableError) as exc:
            log.warning("routing table not reloaded; keeping the current one", extra={"error": str(exc)})

    async def refresh_labels(self) -> None:
        await self._read_store("newly confirmed labels", self.poll_labels)

    async def refresh_state(self) -> None:
        await self._read_store("changed customer states", self.poll_changed_state)

    async def refresh_entities(self) -> None:
        if self.settings.entity_table:
            await self._read_store("the published entity table", self.poll_entity_table)

    async def poll_entity_table(self) -> int:
        """Bring the entity mirror to the newest epoch the entity-state component published; returns it.

        The first read builds the mirror (snapshot + deltas) off the loop; later ones apply the new deltas
        on the loop, between two requests (a request reads the mirror while it scores)."""
        topic = self.settings.transactions_topic
        async with self.pool.connection(timeout=POOL_WAIT_S) as connection:
            row = await (
                await connection.execute(entitystore.PUBLISHED_EPOCH_SQL, (topic, FEATURE_VERSION))
            ).fetchone()
            if row is None:
                return -1
            published = int(row[0])
            mirror = self.engine.entity_mirror
            if mirror is not None and published <= mirror.newest_epoch:
                return published
            if mirror is None:
                config = await (
                    await connection.execute(entitystore.PUBLISHED_CONFIG_SQL, (topic,))
                ).fetchone()
                if config is not None:
                    entitystore.check_config(FeatureConfig.from_dict(config[0]), self.engine.config)
                snapshot = await (
                    await connection.execute(entitystore.SNAPSHOT_SQL, (topic, published))
                ).fetchone()
                if snapshot is None:
                    return -1
                after = int(snapshot[0])
            else:
                after = mirror.newest_epoch
            deltas = await (
                await connection.execute(entitystore.DELTAS_SQL, (topic, after, published))
            ).fetchall()
        if mirror is None:
            fresh = await asyncio.to_thread(entitystore.mirror_from_snapshot, snapshot)
            await asyncio.to_thread(entitystore.apply_deltas, fresh, deltas, published)
            self.engine.attach_entities(fresh)
            log.info("entity table attached", extra={"epoch": published, "entities": len(fresh.table)})
        else:
            entitystore.apply_deltas(mirror, deltas, published)
        metrics.ENTITY_EPOCH.set(published)
        return published

    async def _read_store(self, what: str, read: Callable[[], Awaitable[int]]) -> None:
        try:
            await read()
        except psycopg.Error as exc:
            self.health.database_reachable = False
            log.warning("could not read %s; keeping the current state", what, extra={"error": str(exc)})
        except ConfigurationError as exc:  # at start it stops the gateway; later a poll logs it and goes on
            self.health.database_reachable = True
            log.error("cannot use %s: %s", what, exc)
        else:
            self.health.database_reachable = True

    # --- scoring -------------------------------------------------------------------------------

    async def score(self, transactions: list[Transaction], explain: bool) -> Scored:
        decider = self.decider
        if decider is None:  # a model server did not answer yet (see `start`): the caller may retry
            raise RetryableError("no model loaded yet: the model server is starting")
        started = time.perf_counter()
        customer_ids = [tx.customer_id for tx in transactions]
        with traced("state lookup", TRACER):
            await self._refresh_state(customer_ids)
        with traced("features", TRACER):
            features = self.engine.transform(encode_transactions(transactions))
        with traced("score", TRACER):
            if self.scores_remotely:  # HTTP to a KServe predictor blocks: a worker thread waits for it
                decided = await asyncio.to_thread(
                    self._decide_inline, decider, features, transactions, explain
                )
            else:
                decided = self._decide_inline(decider, features, transactions, explain)
        rows = [transaction_row(tx.model_dump(mode="json"), "api") for tx in transactions]
        return Scored(transactions, decided, rows, (time.perf_counter() - started) * 1000)

    @staticmethod
    def _decide_inline(
        decider: Decider, features: Any, transactions: Sequence[Transaction], explain: bool
    ) -> Decided:
        return decider.decide(
            features,
            [tx.transaction_id for tx in transactions],
            [tx.customer_id for tx in transactions],
            explain_all=explain,
            extras=[tx.extras for tx in transactions] if decider.extra_fields else None,
        )
