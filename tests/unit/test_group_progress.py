"""The group's committed records are read through a coordinator that is still moving.

Seen in `fraudops bench stream` right after the broker started: `committed()` answered NOT_COORDINATOR
and the benchmark (and `make demo`, which reads progress the same way) died on it. The Kafka client is
a stand-in here: the real broker's coordinator move cannot be timed from a test.
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from fraudops_stream import group


class MovingCoordinator:
    """Answers NOT_COORDINATOR `moving` times, then the committed offsets."""

    moving = 2
    asked = 0

    def __init__(self, config: dict[str, Any]) -> None:
        pass

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        type(self).asked += 1
        if type(self).asked <= self.moving:
            raise KafkaException(KafkaError(KafkaError.NOT_COORDINATOR, "Broker: Not coordinator"))
        return [TopicPartition(tp.topic, tp.partition, 100 * (tp.partition + 1)) for tp in partitions]

    def close(self) -> None:
        pass


def test_committed_records_waits_out_a_moving_coordinator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(group, "Consumer", MovingCoordinator)
    assert group.committed_records({}, "g", "t", partitions=3) == 100 + 200 + 300
    assert MovingCoordinator.asked == 3


def test_other_errors_are_not_waited_out(monkeypatch: pytest.MonkeyPatch) -> None:
    class Refused(MovingCoordinator):
        def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
            raise KafkaException(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED, "not allowed"))

    monkeypatch.setattr(group, "Consumer", Refused)
    with pytest.raises(KafkaException, match="not allowed"):
        group.committed_records({}, "g", "t", partitions=1)
