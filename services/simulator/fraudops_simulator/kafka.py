"""Publishing simulated transactions to Kafka: JSON records keyed by customer, at a target rate.

The record value is the Transaction as JSON (orjson), without label columns; the key is the
customer id (per-customer order within a partition, which the stream's feature state needs); the
record timestamp is the wall-clock produce time while the payload keeps the simulated event time.
A W3C `traceparent` header whose trace id is the transaction id lets the consumer's spans join
one trace per transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import orjson
import pyarrow as pa
from confluent_kafka import KafkaException, Producer

from fraudops.errors import FraudopsError
from fraudops.schema import TRANSACTION_FIELDS
from fraudops_simulator.arrow import iso_utc

#: Throughput-oriented producer settings (idempotent, so retries never duplicate a record).
PRODUCER_DEFAULTS: dict[str, object] = {
    "compression.type": "lz4",
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "acks": "all",
    "enable.idempotence": True,
    "delivery.report.only.error": True,
    "client.id": "fraudops-simulator",
}


class KafkaUnavailableError(FraudopsError):
    """The broker cannot be reached or lacks the topic; the message says how to fix it."""


def record_columns(table: pa.Table) -> list[list]:
    """The Transaction fields of a table as Python lists, timestamps already as ISO text."""
    columns = []
    for name in TRANSACTION_FIELDS:
        column = table.column(name)
        columns.append((iso_utc(column) if pa.types.is_timestamp(column.type) else column).to_pylist())
    return columns


def encode_records(table: pa.Table) -> Iterator[bytes]:
    """One JSON document per row (generated lazily: retaining many orjson outputs costs more than making them)."""
    dumps, names = orjson.dumps, TRANSACTION_FIELDS
    for row in zip(*record_columns(table), strict=True):
        yield dumps(dict(zip(names, row, strict=True)))


def check_broker(config: dict[str, object], topic: str, timeout_s: float = 5.0) -> int:
    """The topic's partition count; KafkaUnavailableError if the broker or the topic is missing."""
    servers = config["bootstrap.servers"]
    # log_level 0: librdkafka's own connection-refused lines would bury the one-line error below.
    probe = Producer({**config, "socket.timeout.ms": int(timeout_s * 1000), "log_level": 0})
    try:
        metadata = probe.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        probe.poll(0)  # a refused login raises here (KafkaAuthenticationError), clearer than "cannot reach"
        raise KafkaUnavailableError(
            f"cannot reach Kafka at {servers} — start it with `fraudops infra up` or set KAFKA_BOOTSTRAP_SERVERS"
        ) from exc
    described = metadata.topics.get(topic)
    if described is None or described.error is not None:
        raise KafkaUnavailableError(
            f"Kafka at {servers} has no topic {topic!r} — `fraudops infra up` creates the platform topics"
        )
    return len(described.partitions)


@dataclass
class PublishReport:
    """What a publishing run did."""

    messages: int = 0
    seconds: float = 0.0
    failed: int = 0
    first_error: str | None = None
    unflushed: int = 0

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


@dataclass
class RateLimit:
    """Paces produce calls to `rate` messages/s by absolute schedule (no drift), 0 = unlimited.

    Each batch is released when the schedule says its messages are due, so a slow moment is
    caught up right after and the long-run rate stays exact.
    """

    rate: float
    started: float = field(default_factory=time.perf_counter)

    @property
    def batch(self) -> int:
        return 5_000 if self.rate <= 0 else int(np.clip(self.rate / 200, 1, 5_000))

    def wait_for(self, sent_after_batch: int) -> None:
        if self.rate <= 0:
            return
        delay = self.started + sent_after_batch / self.rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


def publish(
    tables: Iterable[pa.Table],
    *,
    config: dict[str, object],
    topic: str,
    rate: float = 0.0,
    max_messages: int | None = None,
    max_seconds: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_published: Callable[[pa.Table], None] | None = None,
) -> PublishReport:
    """Produce every row of every table (until a limit), then flush; returns counts and timing."""
    report = PublishReport()

    def delivered(error, _message) -> None:  # only called for failures (delivery.report.only.error)
        report.failed += 1
        if report.first_error is None:
            report.first_error = str(error)

    producer = Producer({**PRODUCER_DEFAULTS, **config, "on_delivery": delivered})
    produce, poll = producer.produce, producer.poll
    done = False
    started = time.perf_counter()
    limit = RateLimit(rate)
    deadline = None
    # At a target rate the next table is simulated while this one is sent, and the schedule starts
    # with the first record: otherwise every table's simulation pauses the stream and the schedule
    # catches up in a burst (a latency benchmark would measure the bursts).
    for number, table in enumerate(_prefetched(tables) if rate > 0 else tables):
        if number == 0:
            limit = RateLimit(rate)
            deadline = None if max_seconds is None else limit.started + max_seconds
        if max_messages is not None:
            table = table.slice(0, max(0, max_messages - report.messages))
        keys = table.column("customer_id").to_pylist()
        ids = table.column("transaction_id").to_pylist()
        values = encode_records(table)
        sent_here = 0
        while sent_here < table.num_rows:
            if deadline is not None and time.perf_counter() >= deadline:
                done = True
                break
            n = min(limit.batch, table.num_rows - sent_here)
            limit.wait_for(report.messages + n)
            for i in range(sent_here, sent_here + n):
                headers: list[tuple[str, str | bytes | None]] = [
                    ("traceparent", f"00-{ids[i]}-{ids[i][:16]}-01")
                ]
                while True:
                    try:
                        produce(topic, next(values), keys[i], headers=headers)
                        break
                    except BufferError:  # the local queue is full: let librdkafka send some
                        poll(0.05)
            poll(0)
            sent_here += n
            report.messages += n
            if on_progress is not None:
                on_progress(report.messages)
        if on_published is not None and sent_here:
            on_published(table.slice(0, sent_here))
        if done or (max_messages is not None and report.messages >= max_messages):
            break
    report.unflushed = producer.flush(30.0)
    report.seconds = time.perf_counter() - (limit.started if report.messages else started)
    return report


def _prefetched(tables: Iterable[pa.Table]) -> Iterator[pa.Table]:
    """`tables`, each produced on a worker thread while the caller handles the one before."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="simulate") as pool:
        iterator = iter(tables)
        upcoming = pool.submit(next, iterator, None)
        while (table := upcoming.result()) is not None:
            upcoming = pool.submit(next, iterator, None)
            yield table
