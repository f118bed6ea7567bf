"""The consumer group's progress as Kafka sees it: records committed, and lag behind the partitions' ends."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

from fraudops_stream import metrics

#: answers of a group coordinator that is loading or moving (a new group, a broker just started)
COORDINATOR_MOVING = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)


def coordinator_moving(exc: BaseException) -> bool:
    return isinstance(exc, KafkaException) and exc.args[0].code() in COORDINATOR_MOVING


def committed_records(config: Mapping[str, Any], group: str, topic: str, partitions: int) -> int:
    """Records whose offsets `group` committed on `topic`: stored durably (offsets move only after that).

    Cheap to ask for while a consumer runs (unlike counting rows in PostgreSQL); it joins no group.
    `config` is the platform's client configuration (`fraudops.kafka.client_config`).
    """
    reader = Consumer({**config, "group.id": group, "enable.auto.commit": False})
    ask = Retrying(  # right after a broker start the coordinator answers NOT_COORDINATOR for a while
        retry=retry_if_exception(coordinator_moving),
        stop=stop_after_delay(30),
        wait=wait_fixed(0.5),
        reraise=True,
    )
    try:
        offsets = ask(reader.committed, [TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        reader.close()
    return sum(max(tp.offset, 0) for tp in offsets)


def report_lag(consumer: Consumer, positions: Mapping[int, int], cached: bool = True) -> None:
    """Set the lag gauge of each owned partition: records between its end and the consumer's position.

    `cached=False` asks the broker (while the loop is stalled, the client's cached ends stop moving).
    """
    for tp in consumer.assignment():
        try:
            _, high = consumer.get_watermark_offsets(tp, timeout=2, cached=cached)
        except KafkaException:
            continue
        position = positions.get(tp.partition)
        if position is not None and high >= 0:
            metrics.LAG.labels(str(tp.partition)).set(max(high - position, 0))
