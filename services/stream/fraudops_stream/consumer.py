"""`fraudops stream consume`: the stateful Kafka consumer.

For each batch: decode + validate (bad records → DLQ with the reason) → online features from
per-customer state → route and score (embedded or KServe, shadows too) → store transactions,
decisions and alerts in PostgreSQL idempotently → publish alerts → commit offsets. Offsets are
committed only after the writes are durable (at-least-once), and the sink is idempotent on
transaction id, so a crash at any point neither loses nor duplicates a stored transaction.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import psycopg
import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, Producer, TopicPartition

from fraudops import statestore
from fraudops.config import Settings
from fraudops.errors import RetryableError
from fraudops.features.encode import encode_records
from fraudops.features.engine import FeatureEngine
from fraudops.routing import RoutingTable, load_routing_table
from fraudops.sink import Decision, transactions_table, write_batch
from fraudops.variants import Decider
from fraudops_stream import metrics
from fraudops_stream.decode import decode_batch
from fraudops_stream.state import PartitionedState, PostgresCheckpoints, Snapshot, StateCheckpoints

log = logging.getLogger(__name__)


@dataclass
class ConsumerOptions:
    batch_size: int = 2000
    poll_timeout_s: float = 0.02
    checkpoint_interval_s: float = 30.0
    label_poll_interval_s: float = 5.0
    metrics_port: int | None = None
    max_batches: int | None = None  # stop after this many batches (tests, benchmarks)
    idle_exit_s: float | None = None  # stop after this long without records (benchmarks)
    client_id: str = "fraudops-consumer"
    extra_kafka: dict[str, Any] = field(default_factory=dict)


class StreamConsumer:
    def __init__(
        self,
        settings: Settings,
        options: ConsumerOptions | None = None,
        checkpoints: StateCheckpoints | None = None,
        decider: Decider | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or ConsumerOptions()
        self.topic = settings.transactions_topic
        self.state = PartitionedState(
            FeatureEngine(),
            checkpoints or PostgresCheckpoints(settings.db_url, settings.consumer_group, self.topic),
        )
        threshold = settings.fraud_threshold  # None: each model's own threshold
        # Alerts carry approximate contributions: exact TreeSHAP per alert would cap the stream's throughput.
        self.decider = decider or Decider.from_table(
            self._routing_table(), "stream", threshold, exact_reasons=False
        )
        self.replay_until: dict[int, int] = {}
        self.running = True
        self.processed = 0
        self.batches = 0
        self._db: psycopg.Connection | None = None  # the main thread's (labels)
        self._writer_db: psycopg.Connection | None = None  # the writer thread's (batches)
        # One batch is written while the next is decoded, featured and scored: the database works
        # on the other core instead of the consumer waiting for it.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-writer")
        self._in_flight: Future[None] | None = None
        # Periodic checkpoints are written on a thread of their own (see _advance_checkpoints).
        self._checkpointer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._checkpoint_running: tuple[Future[None], Snapshot] | None = None
        self._checkpoints_due: list[int] = []
        self._durable_offsets: dict[int, int] = {}  # next offset per partition whose records are stored
        self._labels_cursor: datetime | None = None
        self._last_checkpoint = time.monotonic()
        self._last_label_poll = 0.0
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap_servers,
                "group.id": settings.consumer_group,
                "client.id": self.options.client_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "cooperative-sticky",
                # A database outage pauses the loop; stay in the group through it instead of rebalancing.
                "max.poll.interval.ms": 600_000,
                "session.timeout.ms": 15_000,
                "fetch.min.bytes": 64 * 1024,
                "fetch.wait.max.ms": 20,
                # librdkafka's prefetch queue: 32 MB is ~100,000 records, plenty ahead of a 5,000-record batch.
                "queued.max.messages.kbytes": 32 * 1024,
                **self.options.extra_kafka,
            }
        )
        self.producer = Producer(
            {
                "bootstrap.servers": settings.kafka_bootstrap_servers,
                "enable.idempotence": True,
                "compression.type": "lz4",
                "linger.ms": 5,
                "client.id": f"{self.options.client_id}-out",
            }
        )

    def _routing_table(self) -> RoutingTable:
        if self.settings.routing_table_path:
            return load_routing_table(self.settings.routing_table_path)
        return RoutingTable.single(model_version="local", model_uri=self.settings.model_path)

    # --- rebalancing --------------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=10)}
        for tp in partitions:
            resume_at = self.state.restore(tp.partition)
            committed_offset = committed.get(tp.partition)
            if committed_offset is not None and committed_offset < 0:
                committed_offset = None  # the group never committed on this partition
            # Rebuild the state exactly: from the checkpoint (or the beginning) up to the committed offset,
            # in state-only mode; records between a checkpoint ahead of the commit and it are already stored.
            if resume_at is None:
                tp.offset = OFFSET_BEGINNING
                if committed_offset is not None:
                    self.replay_until[tp.partition] = committed_offset
            else:
                tp.offset = resume_at
                if committed_offset is not None and committed_offset > resume_at:
                    self.replay_until[tp.partition] = committed_offset
            log.info(
                "partition assigned",
                extra={
                    "partition": tp.partition,
                    "start": tp.offset,
                    "replay_until": self.replay_until.get(tp.partition),
                },
            )
        # Assign explicitly: the client would otherwise assign the list it passed in, ignoring the start
        # offsets set above, and the replay from the checkpoint would silently not happen.
        consumer.incremental_assign(partitions)
        metrics.ASSIGNED.set(len(consumer.assignment()) + len(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._drain(commit_sync=True)  # the batch being written finishes and commits before its partitions go
        self._settle_checkpoints()
        for tp in partitions:
            try:
                written = self.state.checkpoint(tp.partition)
                log.info(
                    "partition revoked; state checkpointed",
                    extra={"partition": tp.partition, "customers": written},
                )
            except psycopg.Error as exc:  # the next owner replays from the previous checkpoint instead
                log.warning(
                    "checkpoint on revoke failed", extra={"partition": tp.partition, "error": str(exc)}
                )
            self.state.release(tp.partition)
            self.replay_until.pop(tp.partition, None)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._settle_checkpoints()
        for tp in partitions:  # someone else owns them now: no checkpoint, just forget
            self.state.release(tp.partition)
            self.replay_until.pop(tp.partition, None)

    # --- the loop -----------------------------------------------------------------------------------

    def run(self) -> None:
        if self.options.metrics_port:
            metrics.serve(self.options.metrics_port)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        # The loop and the batch writer share the GIL; handed over every 5 ms (the default), a writer
        # step waits behind the next batch's decoding often enough to double a batch's store time.
        sys.setswitchinterval(0.0005)
        # Connect the alert producer now: an idempotent producer first has to obtain its producer id,
        # and the first batch with an alert would otherwise wait for that (a second or more).
        try:
            self.producer.list_topics(self.settings.alerts_topic, timeout=10)
        except KafkaException as exc:
            log.warning("alert producer not connected yet", extra={"error": str(exc)})
        self.consumer.subscribe(
            [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        last_record = time.monotonic()
        try:
            while self.running:
                messages = self.consumer.consume(
                    num_messages=self.options.batch_size, timeout=self.options.poll_timeout_s
                )
                if messages:
                    self.process(messages)
                    last_record = time.monotonic()
                elif (
                    self.options.idle_exit_s is not None
                    and time.monotonic() - last_record > self.options.idle_exit_s
                ):
                    break
                self._housekeeping()
                if self.options.max_batches is not None and self.batches >= self.options.max_batches:
                    break
        finally:
            self.shutdown()

    def _stop(self, signum: int, frame: Any) -> None:
        log.info("stop requested: finishing the batch in hand", extra={"signal": signum})
        self.running = False

    def shutdown(self) -> None:
        """Finish the batch in flight, checkpoint every partition, then leave the group."""
        try:
            self._drain(commit_sync=True)
        except RetryableError as exc:
            # The state is ahead of what is stored: no checkpoint; the next owner replays from the last one.
            log.warning("stopping without a checkpoint", extra={"error": str(exc)})
            self.state.position.clear()
        self._settle_checkpoints()
        for partition in list(self.state.position):
            try:
                self.state.checkpoint(partition)
            except psycopg.Error as exc:
                log.warning(
                    "checkpoint at shutdown failed", extra={"partition": partition, "error": str(exc)}
                )
        self.state.position.clear()  # the revoke callback during close() has nothing left to do
        self.producer.flush(10)
        self.consumer.close()
        self._writer.shutdown(wait=True)
        self._checkpointer.shutdown(wait=True)
        for connection in (self._db, self._writer_db):
            if connection is not None:
                connection.close()

    def _drain(self, commit_sync: bool = False) -> None:
        """Wait until the batch in flight is stored, its alerts published and its offsets committed."""
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            in_flight.result()
        if commit_sync and self._durable_offsets:
            self._commit(
                [TopicPartition(self.topic, p, o) for p, o in self._durable_offsets.items()], wait=True
            )

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_checkpoint >= self.options.checkpoint_interval_s and not self._checkpoints_due:
            self._last_checkpoint = now
            self._checkpoints_due = sorted(self.state.position)
            self._report_lag()
        self._advance_checkpoints()
        if now - self._last_label_poll >= self.options.label_poll_interval_s:
            self._last_label_poll = now
            self._poll_labels()

    def _advance_checkpoints(self) -> None:
        """Periodic checkpoints, one partition at a time on the checkpoint thread.

        The snapshot (the partition's changed customers) is taken here, between batches, once the
        batch in flight is stored; PostgreSQL then takes its time while the loop goes on consuming.
        One partition at a time bounds the memory a snapshot holds to a partition's share.
        """
        if self._checkpoint_running is not None:
            if not self._checkpoint_running[0].done():
                return
            self._collect_checkpoint()
        while self._checkpoints_due:
            partition = self._checkpoints_due.pop(0)
            if partition in self.state.position:
                self._drain()  # a checkpoint may only cover records that are stored
                snapshot = self.state.snapshot(partition)
                self._checkpoint_running = (self._checkpointer.submit(self.state.save, snapshot), snapshot)
                return

    def _settle_checkpoints(self) -> None:
        """Wait for the periodic checkpoint in progress (partitions are about to move or the process to stop)."""
        self._checkpoints_due.clear()
        if self._checkpoint_running is not None:
            self._collect_checkpoint()

    def _collect_checkpoint(self) -> None:
        """The outcome of the periodic checkpoint in progress (waiting for it if need be)."""
        assert self._checkpoint_running is not None
        future, snapshot = self._checkpoint_running
        self._checkpoint_running = None
        try:
            future.result()
        except Exception as exc:  # noqa: BLE001 - any failure: the customers count as changed again
            self.state.unsaved(snapshot)
            log.warning(
                "periodic checkpoint failed", extra={"partition": snapshot.partition, "error": str(exc)}
            )

    def _poll_labels(self) -> None:
        try:
            conn = self._connection()
            events, self._labels_cursor = statestore.fetch_fraud_labels(conn, self._labels_cursor)
        except psycopg.Error as exc:
            log.warning("could not read fraud labels", extra={"error": str(exc)})
            return
        self.state.engine.add_fraud_labels(events)

    def _report_lag(self) -> None:
        for tp in self.consumer.assignment():
            try:
                _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            position = self.state.position.get(tp.partition)
            if position is not None and high >= 0:
                metrics.LAG.labels(str(tp.partition)).set(max(high - position, 0))

    # --- one batch ------------------------------------------------------------------------------------

    def process(self, messages: list[Message]) -> None:
        started = time.perf_counter()
        good_messages = [m for m in messages if m.error() is None]
        for message in messages:
            if message.error() is not None:
                log.warning("consumer error", extra={"error": str(message.error())})
        indexes, records, rejects = decode_batch([m.value() for m in good_messages])
        decoded = time.perf_counter()
        for reject in rejects:
            self._dead_letter(good_messages[reject.index], reject.reason, reject.field)
        valid = [good_messages[i] for i in indexes]

        replay_mask = np.array(
            [m.offset() < self.replay_until.get(m.partition(), -1) for m in valid], dtype=bool
        )
        batch = encode_records(records)
        features = self.state.engine.transform(batch)
        featured = time.perf_counter()
        touched: dict[int, list[str]] = {}
        for message, record in zip(valid, records, strict=True):
            touched.setdefault(message.partition(), []).append(record["customer_id"])
        for partition, customer_ids in touched.items():
            self.state.touch(partition, customer_ids)

        live = np.flatnonzero(~replay_mask)
        rows: pa.Table | None = None
        decisions: pa.Table | None = None
        alerts: list[Decision] = []
        scored = time.perf_counter()
        if len(live):
            decided = self.decider.decide(
                features[live],
                [records[i]["transaction_id"] for i in live],
                [records[i]["customer_id"] for i in live],
            )
            scored = time.perf_counter()
            rows = transactions_table(
                [records[i] for i in live],
                "stream",
                [valid[i].partition() for i in live],
                [valid[i].offset() for i in live],
            )
            decisions = decided.table()
            alerts = decided.alerts()
            metrics.observe_decisions(decided)
        for message in good_messages:
            self.state.position[message.partition()] = max(
                self.state.position.get(message.partition(), 0), message.offset() + 1
            )
        for partition, until in list(self.replay_until.items()):
            if self.state.position.get(partition, 0) >= until:
                del self.replay_until[partition]
        self.processed += len(messages)
        self.batches += 1
        metrics.RECORDS.inc(len(messages))
        metrics.REPLAYED.inc(int(replay_mask.sum()))
        metrics.DEAD_LETTERED.inc(len(rejects))
        metrics.BATCH_SIZE.observe(len(messages))
        metrics.STAGE.labels("decode").observe(decoded - started)
        metrics.STAGE.labels("features").observe(featured - decoded)
        metrics.STAGE.labels("score").observe(scored - featured)
        self._drain()  # at most one batch in flight: backpressure when the database is slow or down
        self._in_flight = self._writer.submit(
            self._finish, rows, decisions, alerts, self._offsets(good_messages), [valid[i] for i in live]
        )

    def _finish(
        self,
        rows: pa.Table | None,
        decisions: pa.Table | None,
        alerts: list[Decision],
        offsets: list[TopicPartition],
        live: list[Message],
    ) -> None:
        """On the writer thread: store, publish alerts, make the DLQ and alerts durable, commit offsets."""
        started = time.perf_counter()
        if rows is not None and decisions is not None:
            self._store(rows, decisions, alerts)
            self._publish_alerts(alerts)
        self.producer.flush(30)  # DLQ records and alerts are durable before the offsets move
        self._commit(offsets)
        self._durable_offsets.update((tp.partition, tp.offset) for tp in offsets)
        metrics.STAGE.labels("store").observe(time.perf_counter() - started)
        metrics.observe_end_to_end(live)

    def _connection(self) -> psycopg.Connection:
        if self._db is None or self._db.closed or self._db.broken:
            self._db = psycopg.connect(self.settings.db_url, connect_timeout=3, autocommit=True)
        return self._db

    def _writer_connection(self) -> psycopg.Connection:
        if self._writer_db is None or self._writer_db.closed or self._writer_db.broken:
            self._writer_db = psycopg.connect(self.settings.db_url, connect_timeout=3, autocommit=True)
        return self._writer_db

    def _store(self, rows: pa.Table, decisions: pa.Table, alerts: list[Decision]) -> None:
        """Write the batch; while the database is down, wait and retry (backpressure) — never drop it."""
        delay = 0.2
        while True:
            try:
                write_batch(self._writer_connection(), rows, decisions, alerts)
                if delay > 0.2:
                    log.info("database back; batch stored", extra={"rows": len(rows)})
                return
            except psycopg.OperationalError as exc:
                metrics.DB_RETRIES.inc()
                log.warning(
                    "database unavailable; retrying the batch",
                    extra={"error": str(exc)[:200], "retry_in_s": delay},
                )
                if self._writer_db is not None:
                    self._writer_db.close()
                self._writer_db = None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                if not self.running:
                    raise RetryableError(
                        "stopping while the database is down; offsets stay uncommitted"
                    ) from exc

    def _publish_alerts(self, alerts: list[Decision]) -> None:
        for alert in alerts:
            # At-least-once, keyed by transaction id: a replay may repeat an alert; readers dedupe by key.
            self.producer.produce(
                self.settings.alerts_topic,
                key=alert.transaction_id,
                value=orjson.dumps(
                    {
                        "transaction_id": alert.transaction_id,
                        "customer_id": alert.customer_id,
                        "score": alert.score,
                        "threshold": alert.threshold,
                        "model_name": alert.model_name,
                        "model_version": alert.model_version,
                        "variant": alert.variant,
                        "reasons": alert.reasons,
                        "decided_at": alert.decided_at.isoformat(),
                    }
                ),
            )
        metrics.ALERTS.inc(len(alerts))

    def _dead_letter(self, message: Message, reason: str, field_name: str) -> None:
        self.producer.produce(
            self.settings.dlq_topic,
            key=message.key(),
            value=message.value(),
            headers=[
                ("dlq.reason", reason.encode()),
                ("dlq.field", field_name.encode()),
                ("dlq.topic", message.topic().encode()),
                ("dlq.partition", str(message.partition()).encode()),
                ("dlq.offset", str(message.offset()).encode()),
                ("dlq.time", datetime.now(UTC).isoformat().encode()),
            ],
        )
        self.producer.poll(0)

    def _offsets(self, messages: list[Message]) -> list[TopicPartition]:
        next_offsets: dict[int, int] = {}
        for message in messages:
            next_offsets[message.partition()] = max(
                next_offsets.get(message.partition(), 0), message.offset() + 1
            )
        return [TopicPartition(self.topic, partition, offset) for partition, offset in next_offsets.items()]

    def _commit(self, offsets: list[TopicPartition], wait: bool = False) -> None:
        """Commit the offsets of durable batches: asynchronously while streaming (a lost commit only
        means an idempotent replay), synchronously when partitions leave so the next owner starts after."""
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=not wait)
        except KafkaException as exc:  # e.g. the partition moved during a long outage: its new owner replays
            log.warning(
                "offset commit failed; the records will be replayed idempotently", extra={"error": str(exc)}
            )


def committed_records(bootstrap_servers: str, group: str, topic: str, partitions: int) -> int:
    """Records whose offsets `group` committed on `topic`: stored durably, by the rule above.

    Cheap to ask for while a consumer runs (unlike counting rows in PostgreSQL); it joins no group.
    """
    reader = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": group, "enable.auto.commit": False}
    )
    try:
        offsets = reader.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        reader.close()
    return sum(max(tp.offset, 0) for tp in offsets)
