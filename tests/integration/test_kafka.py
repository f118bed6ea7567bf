"""A real KRaft broker: topics exist, records round-trip, keys pin partitions, group offsets persist."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from fraudops.config import Settings
from fraudops.errors import InfraError
from fraudops_infra.kafka import wait_for_broker
from tests.integration.conftest import free_port
from tests.integration.tcp_forward import forward_later

pytestmark = pytest.mark.integration


def _new_topic(bootstrap: str, partitions: int) -> str:
    name = f"test-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the futures
    futures = admin.create_topics([NewTopic(name, partitions, 1)])
    for future in futures.values():
        future.result(timeout=30)
    return name


def _produce(bootstrap: str, topic: str, records: list[tuple[str, str]]) -> dict[str, set[int]]:
    """Produce (key, value) records; returns key → partitions the broker acknowledged them on."""
    partitions_by_key: dict[str, set[int]] = {}

    def on_delivery(err, msg) -> None:  # type: ignore[no-untyped-def]
        assert err is None, err
        partitions_by_key.setdefault(msg.key().decode(), set()).add(msg.partition())

    producer = Producer({"bootstrap.servers": bootstrap, "compression.type": "lz4", "linger.ms": 5})
    for key, value in records:
        producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
    assert producer.flush(30) == 0
    return partitions_by_key


def _consume(bootstrap: str, topic: str, group: str, expected: int) -> list[tuple[str, str]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen: list[tuple[str, str]] = []
    try:
        for _ in range(60):
            for msg in consumer.consume(num_messages=500, timeout=1.0):
                assert msg.error() is None, msg.error()
                seen.append((msg.key().decode(), msg.value().decode()))
            if len(seen) >= expected:
                break
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return seen


def test_platform_topics_exist_with_their_partition_counts(local_stack, stack_settings: Settings) -> None:
    topics = local_stack.kafka.topics()
    assert topics[stack_settings.transactions_topic] == 6
    assert stack_settings.alerts_topic in topics
    assert stack_settings.dlq_topic in topics


def test_records_round_trip_and_a_key_always_lands_on_one_partition(kafka_bootstrap: str) -> None:
    topic = _new_topic(kafka_bootstrap, partitions=6)
    records = [(f"customer-{i % 20}", f"tx-{i}") for i in range(400)]

    partitions_by_key = _produce(kafka_bootstrap, topic, records)
    consumed = _consume(kafka_bootstrap, topic, group=f"g-{uuid.uuid4().hex[:6]}", expected=len(records))

    assert sorted(consumed) == sorted(records)
    assert all(len(parts) == 1 for parts in partitions_by_key.values())
    assert len({p for parts in partitions_by_key.values() for p in parts}) > 1  # keys spread over partitions
    # per key, order is preserved (one partition per key)
    for key in {key for key, _ in records}:
        sent = [value for k, value in records if k == key]
        received = [value for k, value in consumed if k == key]
        assert received == sent


def test_committed_group_offsets_resume_where_the_group_stopped(kafka_bootstrap: str) -> None:
    topic = _new_topic(kafka_bootstrap, partitions=2)
    group = f"g-{uuid.uuid4().hex[:6]}"
    _produce(kafka_bootstrap, topic, [(f"k{i}", f"first-{i}") for i in range(50)])
    assert len(_consume(kafka_bootstrap, topic, group, expected=50)) == 50

    _produce(kafka_bootstrap, topic, [(f"k{i}", f"second-{i}") for i in range(30)])
    resumed = _consume(kafka_bootstrap, topic, group, expected=30)

    assert sorted(value for _, value in resumed) == sorted(f"second-{i}" for i in range(30))
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
    committed = consumer.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
    consumer.close()
    assert sum(tp.offset for tp in committed) == 80


def test_topics_waits_for_a_broker_that_answers_later(kafka_bootstrap: str) -> None:
    """`fraudops infra topics --wait-s` (the chart's topics Job) waits for the broker instead of failing,
    so its pod is not restarted while the broker starts."""
    port = free_port()
    forward_later(port, kafka_bootstrap, after_s=3)
    started = time.monotonic()
    wait_for_broker(AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "socket.timeout.ms": 2000}), 60)
    assert time.monotonic() - started >= 3


def test_topics_gives_up_with_a_clear_error_when_no_broker_answers() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(InfraError, match="no Kafka broker answered within 3 s"):
        wait_for_broker(AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "socket.timeout.ms": 1000}), 3)
    assert 3 <= time.monotonic() - started < 20
