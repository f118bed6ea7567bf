"""`fraudops stream entities`: the entity-state component — every partition in, the entity table out.

One process reads every partition of the transactions topic (assigned explicitly, no group
rebalancing: its position lives in PostgreSQL with its state) and the fraud labels from PostgreSQL,
keeps the entity table (`EntityState`, the pure part), and publishes each closed epoch's changed
rows together with its new position in one transaction (`fraudops.entitystore`). A restart resumes
from exactly that position: no transaction and no label counts twice. Scorers mirror the published
table (docs/entity-features.md).

Its PostgreSQL session is its right to write: the topic's writer lock lives as long as the session. A
lost session (a PostgreSQL restart, a cut network, a terminated backend) ends what the component may
assume: it reconnects, takes the lock again — waiting while another instance holds it — and resumes
from what was committed, as a restarted process would (`_session`). `/livez` and `/readyz` on the
metrics port say whether it is alive and whether it has caught up (`entity_health`).

Invalid records are skipped here: the stream consumer dead-letters them with their reason.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition
from tenacity import RetryCallState, retry_if_exception

from fraudops import entitystore, statestore
from fraudops.config import Settings
from fraudops.errors import RetryableError
from fraudops.features.encode import encode_entity_events
from fraudops.features.entity_mirror import EntityDelta
from fraudops.features.spec import FeatureConfig
from fraudops.kafka import client_config
from fraudops_stream import metrics
from fraudops_stream.decode import decode_batch
from fraudops_stream.entity_health import EntityHealth, HealthLimits, Verdict, epoch_lag, liveness, readiness
from fraudops_stream.entity_state import EntityState
from fraudops_stream.retrying import waited_out

log = logging.getLogger(__name__)
T = TypeVar("T")
_UNAVAILABLE = (RetryableError, KafkaException, psycopg.OperationalError)
PROGRESS_LOG_S = 10.0  # at most one "entity epoch published" line this often
#: libpq's TCP keepalives and timeout: a server gone without a word (a partition, a dead node) ends the
#: session in about 30 s instead of TCP's minutes or hours
CLIENT_KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}
#: the server's side of the same: a session whose client is gone ends within about 30 s, and the writer
#: lock with it, so a replacement does not wait hours for a predecessor that cannot write any more
SERVER_KEEPALIVES = (
    "SET tcp_keepalives_idle = 10",
    "SET tcp_keepalives_interval = 5",
    "SET tcp_keepalives_count = 3",
)


class ConnectionLost(Exception):
    """The component's PostgreSQL session has ended, and its writer lock with it: start a new session."""


class TableHeldElsewhere(RetryableError):
    """Another live session holds the topic's writer lock: wait (this is not an outage)."""


@dataclass
class EntityComponentOptions:
    batch_size: int = 5000
    poll_timeout_s: float = 0.1
    #: a partition caught up with its log for this long no longer holds the watermark back
    idle_after_s: float = 2.0
    label_poll_interval_s: float = 5.0
    snapshot_every_epochs: int = 240
    #: ... and not before the deltas since the last snapshot hold this share of the table's rows: a sparse
    #: history (a few changed rows an epoch) would otherwise write the whole table every few thousand rows
    snapshot_rows_share: float = 1.0
    #: published deltas kept behind the newest epoch (a day at 60-s epochs): how far a consumer may lag
    retain_epochs: int = 1440
    idle_exit_s: float | None = None  # stop after this long without records (tests, benchmarks)
    max_retry_wait_s: float = 5.0
    metrics_port: int | None = None
    health: HealthLimits = field(default_factory=HealthLimits)
    extra_kafka: dict[str, Any] = field(default_factory=dict)


def snapshot_due(
    epochs_since: int, rows_since: int, table_rows: int, options: EntityComponentOptions
) -> bool:
    """Whether to store the whole table now: `snapshot_every_epochs` after the last snapshot, once the deltas
    published since hold `snapshot_rows_share` of the table's rows. A snapshot bounds what a restart or a
    mirror's rebuild replays; replaying fewer rows than the table holds costs less than the snapshot
    itself, which in a sparse history would be written every 240 epochs of a few rows each."""
    return (
        epochs_since >= options.snapshot_every_epochs
        and rows_since >= options.snapshot_rows_share * table_rows
    )


class EntityStateComponent:
    def __init__(
        self,
        settings: Settings,
        options: EntityComponentOptions | None = None,
        config: FeatureConfig | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or EntityComponentOptions()
        self.config = config or FeatureConfig()
        self.topic = settings.transactions_topic
        self.running = True
        # the start counts as progress: PostgreSQL unreachable from the start has the same limit
        self.health = EntityHealth(self.options.health, last_progress=time.monotonic())
        self._conn: psycopg.Connection | None = None
        self.state = EntityState(self.config)
        self.labels_cursor: datetime | None = None
        self.partitions: list[int] = []
        self.caught_up_since: dict[int, float] = {}
        self._unpublished: tuple[list[EntityDelta], entitystore.ComponentPosition] | None = None
        self._last_snapshot_epoch: int | None = None
        self._rows_since_snapshot = 0
        self._last_label_poll = -math.inf
        self._last_progress_log = -math.inf
        self.consumer = Consumer(
            client_config(
                settings,
                **{
                    "group.id": f"{settings.consumer_group}-entity-state",  # never joined: partitions are assigned
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "fetch.min.bytes": 64 * 1024,
                    "fetch.wait.max.ms": 50,
                    **self.options.extra_kafka,
                },
            )
        )

    # --- life ------------------------------------------------------------------------------------------

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        if self.options.metrics_port:
            # from the start: a second instance waiting for the table is alive (/livez), not ready (/readyz)
            metrics.serve(self.options.metrics_port, {"/livez": self.liveness, "/readyz": self.readiness})
        try:
            while self.running and not self._session():
                pass
        except _UNAVAILABLE as exc:
            if self.running:
                raise
            log.info("stopped while a dependency was unavailable", extra={"error": str(exc)})
        finally:
            self.consumer.close()
            if self._conn is not None:
                self._conn.close()

    def _session(self) -> bool:
        """One PostgreSQL session: connect, take the table, resume from what was published, run until
        stopped (True). False when the session is lost: the writer lock went with it, and another instance
        may have taken it since — so nothing of this session's memory is trusted. The next session takes
        the lock again before reading or writing anything, and restores the table and offsets committed
        last: an epoch whose publish was in flight is either committed with its position (and resumed
        after) or in neither (and closed again from the offsets before it), never half or twice."""
        try:
            self._conn = self._waiting_out("connecting to PostgreSQL", self._connect, on_session=False)
            self._waiting_out("taking the entity table", self.take_table)
            if not self.running:
                return True
            self._waiting_out("restoring the entity table", self.restore)
            self._waiting_out("reading fraud labels", self._read_labels)  # before any epoch closes
            self._assign()
            self._loop()
            return True
        except ConnectionLost as exc:
            self.health.lost_table()
            metrics.ENTITY_HOLDS_TABLE.set(0)
            log.warning(
                "PostgreSQL session lost; reconnecting, then taking the entity table again and resuming "
                "from what was published",
                extra={"error": str(exc)[:300]},
            )
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            return False

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None:
            raise ConnectionLost("not connected to PostgreSQL")
        return self._conn

    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self.settings.db_url, autocommit=True, **CLIENT_KEEPALIVES)
        for statement in SERVER_KEEPALIVES:
            conn.execute(statement)
        return conn

    def liveness(self) -> Verdict:
        return liveness(self.health, time.monotonic())

    def readiness(self) -> Verdict:
        return readiness(self.health, time.monotonic())

    def _stop(self, signum: int, frame: Any) -> None:
        log.info("stop requested", extra={"signal": signum})
        self.running = False

    def take_table(self) -> None:
        """Hold the topic's writer lock (`entitystore.take_table`) before reading or writing anything."""
        if not entitystore.take_table(self.conn, self.topic):
            raise TableHeldElsewhere(
                f"another entity-state component writes the entity table of topic {self.topic!r} (it holds "
                "the table's PostgreSQL advisory lock); waiting until it stops"
            )
        self.health.took_table()
        metrics.ENTITY_HOLDS_TABLE.set(1)
        log.info("entity table taken", extra={"topic": self.topic})

    def restore(self) -> None:
        """The table, offsets and label cursor as last committed; nothing of this process's memory."""
        self.state = EntityState(self.config)
        self.labels_cursor = None
        self.caught_up_since.clear()
        self._unpublished = None
        self._last_snapshot_epoch = None
        entitystore.ensure_started(self.conn, self.topic)
        loaded = entitystore.load_component(self.conn, self.topic)
        if loaded is None:
            log.info("entity table starts empty", extra={"topic": self.topic})
            return
        table, position = loaded
        entitystore.check_config(position.config, self.config)
        self.state = EntityState(self.config, table, position.offsets)
        self.labels_cursor = position.labels_cursor
        self._last_snapshot_epoch = position.epoch
        log.info(
            "entity table restored",
            extra={"epoch": position.epoch, "entities": len(table), "queued": table.queued},
        )

    def _assign(self) -> None:
        metadata = self._waiting_out(
            "reading the topic", lambda: self.consumer.list_topics(self.topic, timeout=10)
        )
        topic = metadata.topics[self.topic]
        if topic.error is not None:
            raise RetryableError(f"topic {self.topic!r} unavailable: {topic.error}")
        self.partitions = sorted(topic.partitions)
        self.consumer.assign(
            [
                TopicPartition(self.topic, p, self.state.offsets.get(p, OFFSET_BEGINNING))
                for p in self.partitions
            ]
        )

    def _loop(self) -> None:
        last_record = time.monotonic()
        while self.running:
            messages = self.consumer.consume(self.options.batch_size, timeout=self.options.poll_timeout_s)
            if messages:
                self.take(messages)
                last_record = time.monotonic()
            elif (
                self.options.idle_exit_s is not None
                and time.monotonic() - last_record > self.options.idle_exit_s
            ):
                break
            if time.monotonic() - self._last_label_poll >= self.options.label_poll_interval_s:
                self._waiting_out("reading fraud labels", self._read_labels)
            self._waiting_out("publishing the entity table", self.publish_due)

    # --- one round -----------------------------------------------------------------------------------

    def take(self, messages: list[Message]) -> None:
        by_partition: dict[int, list[Message]] = defaultdict(list)
        for message in messages:
            if message.error() is not None:
                log.warning("consumer error", extra={"error": str(message.error())})
                continue
            by_partition[message.partition()].append(message)
        for partition, part in by_partition.items():
            _, records, _ = decode_batch([m.value() for m in part])
            late_before = self.state.late_events
            self.state.take_transactions(partition, part[-1].offset() + 1, encode_entity_events(records))
            metrics.ENTITY_LATE_EVENTS.inc(self.state.late_events - late_before)

    def _read_labels(self) -> None:
        self._last_label_poll = time.monotonic()
        events, cursor = statestore.fetch_fraud_labels(self.conn, self.labels_cursor)
        if len(events):
            self.state.take_labels(events)
            self.labels_cursor = cursor
            log.info("fraud labels read", extra={"labels": len(events)})

    def log_ends(self) -> dict[int, int]:
        """Each partition's end offset, as of the newest fetch (the broker asked for one not fetched yet)."""
        ends = {}
        for partition in self.partitions:
            tp = TopicPartition(self.topic, partition)
            _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:  # not fetched yet: ask the broker
                _, high = self.consumer.get_watermark_offsets(tp, timeout=5)
            ends[partition] = high
        return ends

    def idle_partitions(self, ends: dict[int, int]) -> set[int]:
        """Partitions caught up with their log for at least `idle_after_s` (they hold no record back).

        Checked against the newest end offset every round: a partition that was empty and has just
        been written to is not idle, even before its first record is fetched."""
        now = time.monotonic()
        for partition, high in ends.items():
            if self.state.offsets.get(partition, 0) >= high:
                self.caught_up_since.setdefault(partition, now)
            else:
                self.caught_up_since.pop(partition, None)
        return {p for p, since in self.caught_up_since.items() if now - since >= self.options.idle_after_s}

    def publish_due(self) -> None:
        """Close the epochs the watermark has passed; publish their deltas and the new position together.

        A publish that failed is written again as it was before anything else closes (its epochs are
        closed once: closing them again would find nothing to close and lose their deltas)."""
        ends = self.log_ends()
        if self._unpublished is None:
            self._unpublished = self._close_due(self.idle_partitions(ends))
        if self._unpublished is not None:
            deltas, position = self._unpublished
            entitystore.publish(self.conn, self.topic, deltas, position)
            self._unpublished = None
            self._rows_since_snapshot += sum(len(delta.keys) for delta in deltas)
            self._published(position.epoch)
        self._measure_lag(ends)

    def _close_due(self, idle: set[int]) -> tuple[list[EntityDelta], entitystore.ComponentPosition] | None:
        """The deltas of the epochs the watermark has passed and the position after them (None: none closed)."""
        before = self.state.epoch
        deltas = self.state.close(self.state.watermark(self.partitions, idle))
        epoch = self.state.epoch
        if epoch is None or epoch == before:
            return None
        table = self.state.table
        position = entitystore.ComponentPosition(
            epoch,
            dict(self.state.offsets),
            self.labels_cursor,
            table.queue_f[: table.queued],
            table.queue_i[: table.queued],
            self.config,
            table.queued_entity_keys(),
        )
        return deltas, position

    def _published(self, epoch: int) -> None:
        table = self.state.table
        if self._last_snapshot_epoch is None or snapshot_due(
            epoch - self._last_snapshot_epoch, self._rows_since_snapshot, len(table), self.options
        ):
            entitystore.save_snapshot(self.conn, self.topic, epoch, table, self.options.retain_epochs)
            self._last_snapshot_epoch = epoch
            self._rows_since_snapshot = 0
        metrics.ENTITY_EPOCH.set(epoch)
        metrics.ENTITY_ROWS.set(len(table))
        if time.monotonic() - self._last_progress_log >= PROGRESS_LOG_S:
            self._last_progress_log = time.monotonic()
            log.info(
                "entity epoch published",
                extra={"epoch": epoch, "entities": len(table), "late_events": self.state.late_events},
            )

    def _measure_lag(self, ends: dict[int, int]) -> None:
        """How far the published table stands behind the input, for /readyz and the dashboards."""
        lag_records = sum(max(0, high - self.state.offsets.get(p, 0)) for p, high in ends.items())
        newest = max(self.state.newest.values(), default=None)
        lag_epochs = epoch_lag(newest, self.state.epoch, self.config.entity_epoch_s)
        self.health.measured(lag_records, lag_epochs)
        metrics.ENTITY_LAG_RECORDS.set(lag_records)
        if lag_epochs is not None:
            metrics.ENTITY_EPOCH_LAG.set(lag_epochs)

    def _waiting_out(self, what: str, call: Callable[[], T], *, on_session: bool = True) -> T:
        """`call()`, retried with a growing pause while a dependency is unavailable, until asked to stop.

        With `on_session` (a call on the PostgreSQL session), a failure that ended the session raises
        ConnectionLost instead: a dead connection never answers again, and the writer lock is gone."""

        def retryable(exc: BaseException) -> bool:
            return isinstance(exc, _UNAVAILABLE) and not (on_session and self._session_ended())

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            # PostgreSQL answering "held" is no outage: the probes count it as progress
            held = isinstance(error, TableHeldElsewhere)
            self.health.waiting(what, time.monotonic(), answered=held)
            problem = "held by another instance; waiting" if held else "dependency unavailable; retrying"
            log.warning(f"{what}: {problem}", extra={"error": str(error)[:300]})

        try:
            result = waited_out(
                call,
                retry_if_exception(retryable),
                lambda: not self.running,
                before_sleep,
                self.options.max_retry_wait_s,
            )
        except psycopg.Error as exc:
            if on_session and self._session_ended():
                raise ConnectionLost(f"{what}: {exc}") from exc
            raise
        self.health.progressed(time.monotonic())
        return result

    def _session_ended(self) -> bool:
        return self._conn is None or self._conn.closed
