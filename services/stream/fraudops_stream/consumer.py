"""`fraudops stream consume`: the stateful Kafka consumer — the loop and the partitions' comings and goings.

For each batch, on the consumer's thread: decode + validate (bad records become dead letters with
their reason; extra fields of the kinds the served models read them as) → online features from per-customer state → route and score (embedded or KServe,
shadows too; an outage of the deciding variant is waited out, consuming nothing new). Then, on the
writer's thread (`BatchWriter`), while the next batch is prepared: store → publish alerts and dead
letters → confirm their delivery; then, back on the consumer's thread, commit the batch's offsets (only
this thread touches the Kafka consumer). The sink is idempotent on transaction id, so a
crash at any point neither loses nor duplicates a stored transaction.

State is checkpointed by the `CheckpointScheduler`, only for partitions at rest (every record the
state has seen is written), so a checkpoint never holds the effects of a record that is not stored.

Fraud labels are read from PostgreSQL before the first record (every label so far: the label-risk
tables are global and in no checkpoint, and the first batch's features must already see them), then
every `label_poll_interval_s`. A restored customer's row counts each label once: the engine rebuilds
the label part of every row it imports from the labels it has applied (`fraudops.features.engine`).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
import psycopg
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from tenacity import RetryCallState, retry_if_exception_type

from fraudops import statestore
from fraudops.config import Settings
from fraudops.db import pool_from_settings
from fraudops.errors import RetryableError
from fraudops.features.encode import EncodedBatch, encode_records
from fraudops.features.engine import FeatureEngine
from fraudops.features.entity_mirror import EntityMirror
from fraudops.kafka import client_config
from fraudops.lean import return_freed_memory
from fraudops.routing import RoutingTable, load_routing_table
from fraudops.sink import transactions_table
from fraudops.variants import Decided, Decider, ExtraRows
from fraudops_stream import metrics
from fraudops_stream.checkpointing import CheckpointScheduler
from fraudops_stream.decode import decode_batch
from fraudops_stream.delivery import Publisher, dead_letter
from fraudops_stream.entity_reads import EntityReads
from fraudops_stream.group import report_lag
from fraudops_stream.retrying import waited_out
from fraudops_stream.state import PartitionedState, PostgresCheckpoints, StateCheckpoints
from fraudops_stream.tracing import BatchTrace
from fraudops_stream.writer import Batch, BatchWriter

log = logging.getLogger(__name__)
T = TypeVar("T")
#: What an unavailable dependency raises: waited out while running, the reason to stop quietly when asked to.
_UNAVAILABLE = (RetryableError, KafkaException, psycopg.OperationalError)
#: how often the consumer gives the C heap's freed pages back (`return_freed_memory`)
TRIM_INTERVAL_S = 1.0
ENTITY_POLL_S = 0.05  # how often a consumer waiting for the entity-state component looks again
#: how long a batch waits in hand for the entity-state component; beyond, it is put back (its partitions
#: paused and rewound) and the consumer keeps polling, so a long wait never exceeds max.poll.interval.ms
ENTITY_WAIT_IN_PLACE_S = 2.0
ENTITY_RESUME_CHECK_S = 0.5  # how often paused partitions look whether the component has caught up
#: how often written offsets the broker has not confirmed as committed are committed again
RECOMMIT_S = 1.0


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
    max_retry_wait_s: float = 5.0  # the longest pause between attempts while a dependency is down
    #: An outage (database, model server) pauses the loop; the group keeps the consumer through this long.
    max_poll_interval_s: float = 600.0
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
        # Filled in the background: the consumer starts (and waits) while PostgreSQL is down.
        self.pool = pool_from_settings(settings, "stream", wait=False, autocommit=True)
        self.state = PartitionedState(
            FeatureEngine(),
            checkpoints or PostgresCheckpoints(self.pool, settings.consumer_group, self.topic),
        )
        self.scheduler = CheckpointScheduler(self.state, self.options.checkpoint_interval_s)
        self.decider = decider
        self.replay_until: dict[int, int] = {}
        self.running = True
        self.processed = 0
        self.batches = 0
        # One batch is written while the next is decoded, featured and scored: the database works
        # on the other core instead of the consumer waiting for it.
        self._writer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-writer")
        self._in_flight: tuple[Future[None], Batch] | None = None
        self._durable_offsets: dict[int, int] = {}  # next offset per partition whose records are written
        self._confirmed: dict[int, int] = {}  # next offset per partition the broker confirmed as committed
        self._last_recommit = 0.0
        self._labels_cursor: datetime | None = None
        self._last_label_poll = 0.0
        self._last_trim = 0.0
        #: the published entity table (settings.entity_table) as this consumer reads it
        self.entity_reads = EntityReads(self.topic, self.state.engine.config)
        #: while partitions are paused for the entity-state component: the epoch it must publish first
        self._entity_awaited: int | None = None
        self._entity_checked = 0.0
        self.consumer = Consumer(
            client_config(
                settings,
                **{
                    "group.id": settings.consumer_group,
                    "client.id": self.options.client_id,
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "on_commit": self._on_commit,
                    "auto.offset.reset": "earliest",
                    "partition.assignment.strategy": "cooperative-sticky",
                    "max.poll.interval.ms": int(self.options.max_poll_interval_s * 1000),
                    "session.timeout.ms": 15_000,
                    "fetch.min.bytes": 64 * 1024,
                    "fetch.wait.max.ms": 20,
                    # librdkafka's prefetch queue: 16 MB is ~50,000 records, ten 5,000-record batches ahead
                    # (fetched from the broker in milliseconds); each MB here is a MB of the consumer's memory.
                    "queued.max.messages.kbytes": 16 * 1024,
                    # Once the queue has been full, the next fetch waits this long. librdkafka's default, 1 s,
                    # stalled the stream after each backlog: with an 8 MB queue, p99 161-433 ms, not ~125 ms.
                    "fetch.queue.backoff.ms": 10,
                    **self.options.extra_kafka,
                },
            )
        )
        self.producer = Producer(
            client_config(
                settings,
                **{
                    "enable.idempotence": True,
                    "compression.type": "lz4",
                    "linger.ms": 5,
                    "client.id": f"{self.options.client_id}-out",
                    # A dead letter carries the refused record whole (up to the broker's limit; beyond, truncated).
                    "message.max.bytes": 8 * 1024 * 1024,
                },
            )
        )
        self.publisher = Publisher(self.producer, self.options.max_retry_wait_s)
        self.writer = BatchWriter(
            self.pool,
            self.publisher,
            settings.alerts_topic,
            settings.dlq_topic,
            stopping=lambda: not self.running,
            max_wait_s=self.options.max_retry_wait_s,
        )

    # --- rebalancing --------------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            self._start_positions(consumer, partitions)
        except _UNAVAILABLE as exc:
            if self.running:
                raise
            # Stopping: close() can hand the group's last assignment over while the coordinator no longer
            # answers (seen in `make chaos`: a SIGTERM during a rebalance, the offset fetch timed out and
            # the consumer exited 1). Nothing is consumed any more: the partitions are taken as given,
            # without state, and leave again with the consumer.
            log.info("partitions assigned while stopping: not restored", extra={"error": str(exc)})
        consumer.incremental_assign(partitions)
        if self._entity_awaited is not None:  # they wait for the entity-state component like the others
            consumer.pause(partitions)
        metrics.ASSIGNED.set(len(consumer.assignment()) + len(partitions))

    def _start_positions(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Restore each partition's state and set where it starts (`tp.offset`) and where its replay ends."""
        if not self.running:
            raise RetryableError("stopping: the assignment is not restored")
        committed = {
            tp.partition: tp.offset
            for tp in self._waiting_out(
                "reading committed offsets", lambda: consumer.committed(partitions, timeout=10)
            )
        }
        for tp in partitions:
            resume_at = self._waiting_out("restoring state", lambda p=tp.partition: self.state.restore(p))
            committed_offset = committed.get(tp.partition)
            if committed_offset is not None and committed_offset < 0:
                committed_offset = None  # the group never committed on this partition
            if committed_offset is not None:
                self._confirmed[tp.partition] = committed_offset
            if resume_at is not None and (committed_offset is None or resume_at > committed_offset):
                # A checkpoint is only taken of written records: those before it are durable even though
                # their commit was lost (a kill -9 after the checkpoint, an asynchronous commit failed in
                # an outage). Committed from the loop: with no new record, the group's lag would
                # otherwise never come back to zero (and KEDA would scale on it).
                self._durable_offsets[tp.partition] = resume_at
            # Rebuild the state exactly: from the checkpoint (or the beginning) up to the committed offset,
            # in state-only mode; records between a checkpoint ahead of the commit and it are already stored
            # (the commit is asynchronous, the checkpoint is taken once they are written).
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
        # The caller assigns explicitly: the client would otherwise assign the list it passed in, ignoring
        # the start offsets set here, and the replay from the checkpoint would silently not happen.

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._drain(commit_sync=True)  # the batch being written finishes and commits before its partitions go
        self.scheduler.hand_over(tp.partition for tp in partitions)
        for tp in partitions:
            log.info("partition revoked", extra={"partition": tp.partition})
            self._release(tp.partition)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.scheduler.settle()
        log.warning("partitions lost", extra={"partitions": [tp.partition for tp in partitions]})
        for tp in partitions:  # someone else owns them now: no checkpoint, just forget
            self._release(tp.partition)

    def _release(self, partition: int) -> None:
        self.state.release(partition)
        self.replay_until.pop(partition, None)
        self._durable_offsets.pop(partition, None)  # never commit for a partition another consumer owns
        self._confirmed.pop(partition, None)
        self.entity_reads.release(partition)

    # --- the loop -----------------------------------------------------------------------------------

    def run(self) -> None:
        if self.options.metrics_port:
            metrics.serve(self.options.metrics_port)
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            signal.signal(signal.SIGTERM, self._stop)
            signal.signal(signal.SIGINT, self._stop)
        # The loop and the batch writer share the GIL; handed over every 5 ms (the default), a writer
        # step waits behind the next batch's decoding often enough to double a batch's store time.
        sys.setswitchinterval(0.0005)
        try:
            # Before consuming anything: a record whose alert or dead letter cannot go anywhere must not be taken.
            self.publisher.check_topics([self.settings.alerts_topic, self.settings.dlq_topic])
            if self.decider is None:
                self.decider = self._waiting_out("connecting to the model servers", self._connect_decider)
            self.decider.refuse_without_entity_table(self.settings.entity_table)
            trained_with = self.decider.feature_config()
            if trained_with is not None:  # before any state: features computed as the model was trained
                self.state.engine.configure(trained_with)
                self.entity_reads.config = trained_with
            self._waiting_out("reading fraud labels", self._read_labels)
            self._last_label_poll = time.monotonic()
            self.consumer.subscribe(
                [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
            )
            self._loop()
        except _UNAVAILABLE as exc:
            if self.running:
                raise
            log.info("stopped while a dependency was unavailable", extra={"error": str(exc)})
        finally:
            self.shutdown()

    def _loop(self) -> None:
        last_record = time.monotonic()
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

    def _connect_decider(self) -> Decider:
        table = (
            load_routing_table(self.settings.routing_table_path)
            if self.settings.routing_table_path
            else RoutingTable.single(model_version="local", model_uri=self.settings.model_path)
        )
        threshold = self.settings.fraud_threshold  # None: each model's own threshold
        # Alerts carry approximate contributions: exact TreeSHAP per alert would cap the stream's throughput.
        return Decider.from_table(table, "stream", threshold, exact_reasons=False)

    def _stop(self, signum: int, frame: Any) -> None:
        log.info("stop requested: finishing the batch in hand", extra={"signal": signum})
        self.stop()

    def stop(self) -> None:
        """End `run()` cleanly, as SIGTERM does: the batch in hand is finished, the state checkpointed."""
        self.running = False

    def shutdown(self) -> None:
        """Finish the batch in flight, checkpoint the partitions at rest, then leave the group.

        Every client is closed here, each even when closing the one before failed (a refused login
        raises from `close()` too): a Kafka client left to the interpreter's exit is torn down by
        librdkafka calling back into a half-finalised interpreter, a segfault (exit -11 after the
        one-line error, seen in CI when the password was wrong).
        """
        with ExitStack() as closing:  # callbacks run last-in first-out: the consumer first, the pool last
            closing.callback(self.pool.close)
            closing.callback(self.scheduler.close)
            closing.callback(self.publisher.close)
            closing.callback(self._writer_thread.shutdown, wait=True)
            closing.callback(self.consumer.close)
            try:
                self._drain(commit_sync=True)
            except RetryableError as exc:
                log.warning(
                    "stopping before the batch in flight was written; its offsets stay uncommitted",
                    extra={"error": str(exc)},
                )
            self.scheduler.hand_over(sorted(self.state.position))
            for partition in list(self.state.position):
                self._release(partition)  # the revoke callback during close() has nothing left to do

    def _drain(self, commit_sync: bool = False) -> None:
        """Wait until the batch in flight is written (stored, delivered), then commit its offsets:
        asynchronously while streaming; with `commit_sync`, every written offset, synchronously."""
        if self._in_flight is not None:
            (in_flight, batch), self._in_flight = self._in_flight, None
            in_flight.result()
            self.state.written(batch.offsets)
            self._durable_offsets.update(batch.offsets)
            if not commit_sync:
                self._commit(batch.offsets)
        if commit_sync and self._durable_offsets:
            self._commit(self._durable_offsets, wait=True)

    def _housekeeping(self) -> None:
        if self._in_flight is not None and self._in_flight[0].done():
            self._drain()  # commit a written batch now, not when the next one comes (lag would show it)
        self._commit_unconfirmed()
        if self._entity_awaited is not None:
            self._resume_when_entity_table_caught_up()
        if self.scheduler.tick(self._drain):
            report_lag(self.consumer, self.state.position)
        now = time.monotonic()
        if now - self._last_label_poll >= self.options.label_poll_interval_s:
            self._last_label_poll = now
            self._poll_labels()
        if now - self._last_trim >= TRIM_INTERVAL_S:
            self._last_trim = now
            return_freed_memory()

    def _poll_labels(self) -> None:
        try:
            self._read_labels()
        except psycopg.Error as exc:  # the next poll reads them: the cursor did not move
            log.warning("could not read fraud labels", extra={"error": str(exc)})

    def _read_labels(self) -> None:
        """Hand the fraud labels received since the last read to the engine."""
        with self.pool.connection(timeout=2) as conn:
            events, self._labels_cursor = statestore.fetch_fraud_labels(conn, self._labels_cursor)
        self.state.engine.add_fraud_labels(events)
        if len(events):
            log.info("fraud labels read", extra={"labels": len(events)})

    def _waiting_out(self, what: str, call: Callable[[], T], on_wait: Callable[[], None] | None = None) -> T:
        """`call()`, retried with a growing pause while a dependency is unavailable, until it succeeds or
        the consumer is asked to stop (then the last error is raised)."""

        def report(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                f"{what}: dependency unavailable; retrying",
                extra={"error": str(error)[:300], "attempt": state.attempt_number},
            )
            if on_wait is not None:
                on_wait()

        return waited_out(
            call,
            retry_if_exception_type(_UNAVAILABLE),
            lambda: not self.running,
            report,
            self.options.max_retry_wait_s,
        )

    # --- one batch ------------------------------------------------------------------------------------

    def process(self, messages: list[Message]) -> None:
        started = time.perf_counter()
        good = [m for m in messages if m.error() is None]
        trace = BatchTrace.start(good, self.topic, self.settings.consumer_group)
        try:
            batch = self._prepare(messages, good, trace, started)
            if batch is not None:
                self._drain()  # at most one batch in flight: backpressure when the database is slow or down
        except BaseException:
            if trace is not None:
                trace.end()  # the batch will be consumed again; the spans of this attempt still go out
            raise
        if batch is None:  # put back for the entity-state component: nothing of it was taken
            if trace is not None:
                trace.end()
            return
        self._in_flight = (self._writer_thread.submit(self.writer.write, batch), batch)

    def _prepare(
        self, messages: list[Message], good: list[Message], trace: BatchTrace | None, started: float
    ) -> Batch | None:
        """Decode, feature and score a batch: what the writer then stores and publishes (None: the batch
        was put back to wait for the entity-state component)."""
        for message in messages:
            if message.error() is not None:
                log.warning("consumer error", extra={"error": str(message.error())})
        assert self.decider is not None
        extra_fields = self.decider.extra_fields
        indexes, records, rejects = decode_batch([m.value() for m in good], extra_fields)
        decoded = time.perf_counter()
        dead_letters = [
            dead_letter(good[r.index], r.reason, r.field, self.settings.dlq_topic) for r in rejects
        ]
        valid = [good[i] for i in indexes]
        encoded = encode_records(records)
        if self.settings.entity_table and records and not self._entity_table_ready(encoded):
            self._put_back(good)
            return None  # the records come again, each with a trace of the batch that scores them

        replay_mask = np.array(
            [m.offset() < self.replay_until.get(m.partition(), -1) for m in valid], dtype=bool
        )
        live = np.flatnonzero(~replay_mask)
        if trace is not None:  # a replayed record rebuilds state only: no scoring or write spans for it
            trace.name_transactions([valid[i] for i in live], [records[i]["transaction_id"] for i in live])
        features = self._features(encoded, [m.partition() for m in valid])
        featured = time.perf_counter()
        if trace is not None:
            trace.stage("features", decoded, featured)
        touched: dict[int, list[str]] = {}
        for message, record in zip(valid, records, strict=True):
            touched.setdefault(message.partition(), []).append(record["customer_id"])
        for partition, customer_ids in touched.items():
            self.state.touch(partition, customer_ids)
        offsets = self._offsets(good)
        # The state now holds these records; until the batch is written, their partitions are not at rest.
        for partition, next_offset in offsets.items():
            self.state.advanced(partition, next_offset)
        for partition, until in list(self.replay_until.items()):
            if self.state.position.get(partition, 0) >= until:
                del self.replay_until[partition]

        batch = Batch(offsets, dead_letters=dead_letters, trace=trace)
        scored = time.perf_counter()
        if len(live):
            with trace.scoring() if trace is not None else nullcontext():
                decided = self._decide(
                    features[live],
                    [records[i]["transaction_id"] for i in live],
                    [records[i]["customer_id"] for i in live],
                    [records[i].get("extras") for i in live] if extra_fields else None,
                )
            scored = time.perf_counter()
            batch.messages = [valid[i] for i in live]
            batch.transactions = transactions_table(
                [records[i] for i in live],
                "stream",
                [m.partition() for m in batch.messages],
                [m.offset() for m in batch.messages],
            )
            batch.decisions = decided.table()
            batch.alerts = decided.alerts()
            metrics.observe_decisions(decided)
        self.processed += len(messages)
        self.batches += 1
        metrics.RECORDS.inc(len(messages))
        metrics.REPLAYED.inc(int(replay_mask.sum()))
        metrics.DEAD_LETTERED.inc(len(rejects))
        metrics.BATCH_SIZE.observe(len(messages))
        metrics.STAGE.labels("decode").observe(decoded - started)
        metrics.STAGE.labels("features").observe(featured - decoded)
        metrics.STAGE.labels("score").observe(scored - featured)
        return batch

    def _features(self, batch: EncodedBatch, partitions: list[int]) -> np.ndarray:
        """Features of the batch; with the entity table, each record reads it at the start of the epoch
        `FeatureConfig.read_epochs` gives it (its own minus the model's entity lag)."""
        features = self.state.engine.transform(batch)  # entity features unknown here: from the mirror
        if self.settings.entity_table and len(partitions):
            self.entity_reads.fill(batch, partitions, features)
        return features

    # --- waiting for the entity-state component ----------------------------------------------------------

    def _entity_table_ready(self, batch: EncodedBatch) -> bool:
        """Whether the mirror holds the epochs the batch reads, waiting up to ENTITY_WAIT_IN_PLACE_S for the
        entity-state component to publish them (read one epoch behind, they are normally published)."""
        epochs = self.entity_reads.epochs(batch)
        oldest, newest = int(epochs.min()), int(epochs.max())
        waited = time.perf_counter()
        try:
            while True:
                mirror = self._waiting_out(
                    "reading the entity table", lambda: self._entity_mirror_up_to(oldest, newest)
                )
                if mirror is not None:
                    return True
                if not self.running:
                    raise RetryableError("stopped while waiting for the entity-state component")
                if time.perf_counter() - waited > ENTITY_WAIT_IN_PLACE_S:
                    self._entity_awaited = newest
                    return False
                time.sleep(ENTITY_POLL_S)
        finally:
            metrics.ENTITY_WAIT.inc(time.perf_counter() - waited)

    def _entity_mirror_up_to(self, oldest: int, newest: int) -> EntityMirror | None:
        with self.pool.connection() as conn:
            return self.entity_reads.mirror_up_to(conn, oldest, newest)

    def _put_back(self, messages: list[Message]) -> None:
        """Take nothing of this batch: pause every partition and rewind those it came from, so they deliver
        it again once the entity-state component has caught up. The consumer polls on meanwhile and stays
        in its group however long the component takes; nothing of the batch touched the state."""
        first: dict[int, int] = {}
        for message in messages:
            first.setdefault(message.partition(), message.offset())
        self.consumer.pause(self.consumer.assignment())
        for partition, offset in first.items():
            self.consumer.seek(TopicPartition(self.topic, partition, offset))
        log.info(
            "waiting for the entity-state component: partitions paused",
            extra={"epoch": self._entity_awaited, "rewound": first},
        )

    def _resume_when_entity_table_caught_up(self) -> None:
        if time.monotonic() - self._entity_checked < ENTITY_RESUME_CHECK_S:
            return
        self._entity_checked = time.monotonic()
        try:
            with self.pool.connection(timeout=2) as conn:
                published = self.entity_reads.published_epoch(conn)
        except psycopg.Error as exc:  # looked at again on the next round
            log.warning("could not read the entity table's epoch", extra={"error": str(exc)})
            return
        if published is not None and self._entity_awaited is not None and published >= self._entity_awaited:
            self.consumer.resume(self.consumer.assignment())
            log.info("entity-state component caught up: partitions resumed", extra={"epoch": published})
            self._entity_awaited = None

    def _decide(
        self,
        features: np.ndarray,
        transaction_ids: list[str],
        customer_ids: list[str],
        extras: ExtraRows | None,
    ) -> Decided:
        """Score the batch; while the deciding variant is down, wait (consuming nothing new: the lag grows
        and shows it) and try again. A canary or shadow outage never gets here (the Decider falls back)."""
        assert self.decider is not None
        decider = self.decider

        def stalled() -> None:
            metrics.SCORING_RETRIES.inc()
            if self._in_flight is not None and self._in_flight[0].done():
                self._drain()  # the batch before is written: commit it now, not after the outage
            report_lag(self.consumer, self.state.position, cached=False)

        return self._waiting_out(
            "scoring",
            lambda: decider.decide(features, transaction_ids, customer_ids, extras=extras),
            on_wait=stalled,
        )

    @staticmethod
    def _offsets(messages: list[Message]) -> dict[int, int]:
        next_offsets: dict[int, int] = {}
        for message in messages:
            next_offsets[message.partition()] = max(
                next_offsets.get(message.partition(), 0), message.offset() + 1
            )
        return next_offsets

    def _commit_unconfirmed(self) -> None:
        """Commit again, at most every RECOMMIT_S, the written offsets the broker has not confirmed: an
        asynchronous commit lost to a broker outage is otherwise never repeated once the records stop."""
        now = time.monotonic()
        if now - self._last_recommit < RECOMMIT_S:
            return
        self._last_recommit = now
        unconfirmed = {p: o for p, o in self._durable_offsets.items() if self._confirmed.get(p, -1) < o}
        if unconfirmed:
            self._commit(unconfirmed)

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """The broker's answer to an asynchronous commit (called from `consume()`, on the loop's thread)."""
        if error is not None:
            log.warning("offset commit failed; committed again shortly", extra={"error": str(error)})
        self._confirm(partitions)

    def _confirm(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            if tp.topic == self.topic and tp.error is None and tp.offset >= 0:
                self._confirmed[tp.partition] = max(self._confirmed.get(tp.partition, -1), tp.offset)

    def _commit(self, offsets: dict[int, int], wait: bool = False) -> None:
        """Commit the offsets of written batches: asynchronously while streaming (a lost commit only
        means an idempotent replay), synchronously when partitions leave so the next owner starts after."""
        if not offsets:
            return
        try:
            answered = self.consumer.commit(
                offsets=[TopicPartition(self.topic, p, o) for p, o in offsets.items()], asynchronous=not wait
            )
            if wait and answered:  # a synchronous commit's answer does not go through on_commit
                self._confirm(answered)
        except KafkaException as exc:  # e.g. the partition moved during a long outage: its new owner replays
            log.warning(
                "offset commit failed; the records will be replayed idempotently", extra={"error": str(exc)}
            )
