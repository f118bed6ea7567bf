"""`fraudops stream entities`: the entity-state component — every partition in, the entity table out.

One process reads every partition of the transactions topic (assigned explicitly, no group
rebalancing: its position lives in PostgreSQL with its state) and the fraud labels from PostgreSQL,
keeps the entity table (`EntityState`, the pure part), and publishes each closed epoch's changed
rows together with its new position in one transaction (`fraudops.entitystore`). A restart resumes
from exactly that position: no transaction and no label counts twice. Scorers mirror the published
table (docs/entity-features.md).

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
from tenacity import Retrying, retry_if_exception_type, wait_exponential

from fraudops import entitystore, statestore
from fraudops.config import Settings
from fraudops.errors import RetryableError
from fraudops.features.encode import encode_records
from fraudops.features.spec import FeatureConfig
from fraudops.kafka import client_config
from fraudops_stream import metrics
from fraudops_stream.decode import decode_batch
from fraudops_stream.entity_state import EntityState

log = logging.getLogger(__name__)
T = TypeVar("T")
_UNAVAILABLE = (RetryableError, KafkaException, psycopg.OperationalError)
PROGRESS_LOG_S = 10.0  # at most one "entity epoch published" line this often


@dataclass
class EntityComponentOptions:
    batch_size: int = 5000
    poll_timeout_s: float = 0.1
    #: a partition caught up with its log for this long no longer holds the watermark back
    idle_after_s: float = 2.0
    label_poll_interval_s: float = 5.0
    snapshot_every_epochs: int = 240
    #: published deltas kept behind the newest epoch (a day at 60-s epochs): how far a consumer may lag
    retain_epochs: int = 1440
    idle_exit_s: float | None = None  # stop after this long without records (tests, benchmarks)
    max_retry_wait_s: float = 5.0
    metrics_port: int | None = None
    extra_kafka: dict[str, Any] = field(default_factory=dict)


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
        self.conn = self._waiting_out(
            "connecting to PostgreSQL", lambda: psycopg.connect(settings.db_url, autocommit=True)
        )
        self.state = EntityState(self.config)
        self.labels_cursor: datetime | None = None
        self.partitions: list[int] = []
        self.caught_up_since: dict[int, float] = {}
        self._last_snapshot_epoch: int | None = None
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
        try:
            self._waiting_out("taking the entity table", self.take_table)
            if not self.running:
                return
            # Served once the table is this process's: a second instance waiting for it is not ready.
            if self.options.metrics_port:
                metrics.serve(self.options.metrics_port)
            self._waiting_out("restoring the entity table", self.restore)
            self._waiting_out("reading fraud labels", self._read_labels)  # before any epoch closes
            self._assign()
            self._loop()
        except _UNAVAILABLE as exc:
            if self.running:
                raise
            log.info("stopped while a dependency was unavailable", extra={"error": str(exc)})
        finally:
            self.consumer.close()
            self.conn.close()

    def _stop(self, signum: int, frame: Any) -> None:
        log.info("stop requested", extra={"signal": signum})
        self.running = False

    def take_table(self) -> None:
        """Hold the topic's writer lock (`entitystore.take_table`) before reading or writing anything."""
        if not entitystore.take_table(self.conn, self.topic):
            raise RetryableError(
                f"another entity-state component writes the entity table of topic {self.topic!r} (it holds "
                "the table's PostgreSQL advisory lock); waiting until it stops"
            )
        log.info("entity table taken", extra={"topic": self.topic})

    def restore(self) -> None:
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
            self.state.take_transactions(partition, part[-1].offset() + 1, encode_records(records))
            metrics.ENTITY_LATE_EVENTS.inc(self.state.late_events - late_before)

    def _read_labels(self) -> None:
        self._last_label_poll = time.monotonic()
        events, cursor = statestore.fetch_fraud_labels(self.conn, self.labels_cursor)
        if len(events):
            self.state.take_labels(events)
            self.labels_cursor = cursor
            log.info("fraud labels read", extra={"labels": len(events)})

    def idle_partitions(self) -> set[int]:
        """Partitions caught up with their log for at least `idle_after_s` (they hold no record back).

        Checked against the newest end offset every round: a partition that was empty and has just
        been written to is not idle, even before its first record is fetched."""
        now = time.monotonic()
        for partition in self.partitions:
            tp = TopicPartition(self.topic, partition)
            _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:  # not fetched yet: ask the broker
                _, high = self.consumer.get_watermark_offsets(tp, timeout=5)
            if self.state.offsets.get(partition, 0) >= high:
                self.caught_up_since.setdefault(partition, now)
            else:
                self.caught_up_since.pop(partition, None)
        return {p for p, since in self.caught_up_since.items() if now - since >= self.options.idle_after_s}

    def publish_due(self) -> None:
        """Close the epochs the watermark has passed; publish their deltas and the new position together."""
        before = self.state.epoch
        deltas = self.state.close(self.state.watermark(self.partitions, self.idle_partitions()))
        epoch = self.state.epoch
        if epoch is None or epoch == before:
            return
        table = self.state.table
        position = entitystore.ComponentPosition(
            epoch,
            dict(self.state.offsets),
            self.labels_cursor,
            table.queue_f[: table.queued],
            table.queue_i[: table.queued],
            self.config,
        )
        entitystore.publish(self.conn, self.topic, deltas, position)
        if (
            self._last_snapshot_epoch is None
            or epoch - self._last_snapshot_epoch >= self.options.snapshot_every_epochs
        ):
            entitystore.save_snapshot(self.conn, self.topic, epoch, table, self.options.retain_epochs)
            self._last_snapshot_epoch = epoch
        metrics.ENTITY_EPOCH.set(epoch)
        metrics.ENTITY_ROWS.set(len(table))
        if time.monotonic() - self._last_progress_log >= PROGRESS_LOG_S:
            self._last_progress_log = time.monotonic()
            log.info(
                "entity epoch published",
                extra={"epoch": epoch, "entities": len(table), "late_events": self.state.late_events},
            )

    def _waiting_out(self, what: str, call: Callable[[], T]) -> T:
        """`call()`, retried with a growing pause while a dependency is unavailable, until asked to stop."""
        retrying = Retrying(
            retry=retry_if_exception_type(_UNAVAILABLE),
            stop=lambda _: not self.running,
            before_sleep=lambda state: log.warning(
                f"{what}: dependency unavailable; retrying",
                extra={"error": str(state.outcome.exception() if state.outcome else None)[:300]},
            ),
            reraise=True,
            wait=wait_exponential(multiplier=0.2, max=self.options.max_retry_wait_s),
        )
        return retrying(call)
