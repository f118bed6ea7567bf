"""Publishing with proof of delivery: alerts and dead letters are confirmed by the broker, or retried.

`Publisher.publish` produces a batch's records, serves the delivery reports until every record has
one, and produces again those the broker did not take (a missing topic, a broker outage, a full
local queue) with a growing pause, until all are delivered or the consumer is stopping. Only then
may the batch's offsets move: an alert that is not on its topic is a fraud nobody stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from tenacity import RetryCallState, retry_if_exception_type

from fraudops.errors import ConfigurationError, RetryableError
from fraudops_stream import metrics
from fraudops_stream.retrying import waited_out

log = logging.getLogger(__name__)

#: A dead letter whose record the broker refuses as too large keeps this much of the value (and says so).
TRUNCATED_VALUE_BYTES = 64 * 1024
_TOO_LARGE = (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_MSG_SIZE)


@dataclass
class Outgoing:
    """One record to publish."""

    topic: str
    key: str | bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    def truncated(self) -> Outgoing:
        """The same record with its value cut to TRUNCATED_VALUE_BYTES (a header keeps the original size)."""
        size = len(self.value or b"")
        return Outgoing(
            self.topic,
            self.key,
            (self.value or b"")[:TRUNCATED_VALUE_BYTES],
            [*self.headers, ("dlq.value_truncated_from_bytes", str(size).encode())],
        )


def dead_letter(message: Message, reason: str, field_name: str, dlq_topic: str) -> Outgoing:
    """A record that will never be valid, with why, for the DLQ (the original bytes untouched)."""
    return Outgoing(
        dlq_topic,
        message.key(),
        message.value(),
        [
            ("dlq.reason", reason.encode()),
            ("dlq.field", field_name.encode()),
            ("dlq.topic", (message.topic() or "").encode()),
            ("dlq.partition", str(message.partition()).encode()),
            ("dlq.offset", str(message.offset()).encode()),
            ("dlq.time", datetime.now(UTC).isoformat().encode()),
        ],
    )


class UndeliveredError(RetryableError):
    """Some records were not delivered; they are produced again after a pause."""


class Publisher:
    """A producer whose every record is confirmed delivered before `publish` returns."""

    def __init__(self, producer: Producer, max_wait_s: float = 10.0) -> None:
        self.producer = producer
        self.max_wait_s = max_wait_s

    def check_topics(self, topics: Sequence[str], timeout_s: float = 10.0) -> None:
        """Fail at start-up, before consuming anything, when a topic to publish to does not exist.

        The broker does not create topics on first use, so a missing one would fail every record sent
        to it. An unreachable broker is not a reason to stop: publishing waits for it like for any outage.
        """
        try:
            known = self.producer.list_topics(timeout=timeout_s).topics
        except KafkaException as exc:
            self.producer.poll(0)  # a refused login raises here (KafkaAuthenticationError): no point waiting
            log.warning("broker not reachable yet; topics not checked", extra={"error": str(exc)})
            return
        missing = [topic for topic in topics if topic not in known]
        if missing:
            raise ConfigurationError(
                f"topic(s) {', '.join(missing)} do not exist on the broker, and alerts and dead letters must be "
                "delivered before offsets move: create them (`fraudops infra up` creates the platform topics; "
                "on a cluster, the operator's KafkaTopic objects) or set ALERTS_TOPIC / DLQ_TOPIC"
            )

    def close(self, timeout_s: float = 5.0) -> None:
        """Serve the last delivery reports, then release the producer. Whatever is still queued was never
        confirmed, so the offsets of its batch never moved: it is dropped here and consumed again."""
        try:
            self.producer.flush(timeout_s)
        finally:
            self.producer.purge()
            self.producer.close()

    def publish(self, records: Sequence[Outgoing], stopping: Callable[[], bool]) -> None:
        """Deliver every record (at least once), waiting out failures; RetryableError if stopping first."""
        if not records:
            return
        pending = list(records)

        def attempt() -> None:
            nonlocal pending
            pending = self._deliver(pending, stopping)
            if pending:
                raise UndeliveredError(f"{len(pending)} record(s) not delivered")

        def report(state: RetryCallState) -> None:
            metrics.DELIVERY_RETRIES.inc()
            wait = state.next_action.sleep if state.next_action else 0.0
            log.error(
                "records not delivered; producing them again",
                extra={
                    "records": len(pending),
                    "topics": sorted({r.topic for r in pending}),
                    "retry_in_s": round(wait, 2),
                },
            )

        waited_out(attempt, retry_if_exception_type(UndeliveredError), stopping, report, self.max_wait_s)

    def _deliver(self, records: list[Outgoing], stopping: Callable[[], bool]) -> list[Outgoing]:
        """Produce the records and serve reports until each has one; returns those not delivered."""
        failed: list[Outgoing] = []
        for record in records:
            self._produce(record, failed)
        while (
            self.producer.flush(1.0) > 0
        ):  # every record gets a report: delivered, or failed after its timeout
            if stopping():
                raise RetryableError("stopping with deliveries unconfirmed; offsets stay uncommitted")
        return failed

    def _produce(self, record: Outgoing, failed: list[Outgoing]) -> None:
        def delivered(error: KafkaError | None, _: Message) -> None:
            if error is None:
                return
            if error.code() in _TOO_LARGE and len(record.value or b"") > TRUNCATED_VALUE_BYTES:
                failed.append(record.truncated())
            else:
                failed.append(record)
            log.warning("delivery failed", extra={"topic": record.topic, "error": error.str()})

        while True:
            try:
                self.producer.produce(
                    record.topic,
                    value=record.value,
                    key=record.key,
                    headers=record.headers,
                    on_delivery=delivered,
                )
                return
            except BufferError:  # the local queue is full: serve delivery reports to make room, then again
                self.producer.poll(0.1)
            except KafkaException as exc:  # refused before queueing (unknown topic, record too large)
                error = exc.args[0]
                delivered(error, None)  # type: ignore[arg-type]
                return
