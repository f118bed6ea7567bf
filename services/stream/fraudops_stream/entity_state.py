"""The entity-state component's pure core: every partition's transactions and every fraud label in,
the entity table closed epoch by epoch and the deltas to publish out (no I/O here).

    state = EntityState(config)
    state.take_transactions(partition, next_offset, entity_events)   # from any partition, any order
    state.take_labels(label_events)                                  # at their known-at times
    deltas = state.close(state.watermark(partitions, idle))          # what to publish, in order

An epoch closes once the watermark — the oldest newest-event-time over the partitions still
delivering (a partition caught up with its log for a while does not hold it back) — has passed its
end. Events are applied in the order training's replay applies them (`EntityTable.close_epochs`), so
the published table of epoch k equals the replay's table at the start of epoch k, value for value.
An event that arrives after its epoch closed (late) is applied at the next close and counted.
"""

from __future__ import annotations

import math

import numpy as np

from fraudops.features.encode import EntityEvents
from fraudops.features.engine import LabelEvents
from fraudops.features.entities import EntityTable
from fraudops.features.entity_mirror import EntityDelta
from fraudops.features.spec import FeatureConfig


class EntityState:
    """The component's table, its position in every partition, and each partition's newest event time."""

    def __init__(
        self, config: FeatureConfig, table: EntityTable | None = None, offsets: dict[int, int] | None = None
    ) -> None:
        self.config = config
        self.table = table or EntityTable()
        self.offsets: dict[int, int] = dict(offsets or {})  # next offset per partition
        self.newest: dict[int, float] = {}  # newest event time taken per partition (since the start)
        self.late_events = 0

    @property
    def epoch(self) -> int | None:
        """The epoch whose start the table stands at (None: nothing closed yet)."""
        return None if math.isinf(self.table.epoch) else int(self.table.epoch)

    def take_transactions(self, partition: int, next_offset: int, events: EntityEvents) -> None:
        """A partition's transactions (valid records only: the stream consumer dead-letters the rest)."""
        times = events.times
        self._count_late(times)
        self.table.queue_events(times, np.full(len(times), np.nan), events.risk_keys, events.customer_hashes)
        if len(times):
            self.newest[partition] = max(self.newest.get(partition, -math.inf), float(times.max()))
        self.offsets[partition] = max(self.offsets.get(partition, 0), next_offset)

    def take_labels(self, labels: LabelEvents) -> None:
        """Confirmed frauds: each counts when it became known, on the day its transaction happened."""
        self._count_late(labels.known_at)
        self.table.queue_events(
            labels.known_at, labels.event_times, labels.risk_keys, np.zeros(len(labels), dtype=np.int64)
        )

    def watermark(self, partitions: list[int], idle: set[int]) -> float:
        """Event time before which every partition has delivered everything it will (as far as we know)."""
        delivering = [p for p in partitions if p not in idle]
        if any(p not in self.newest for p in delivering):
            return -math.inf
        if delivering:
            return min(self.newest[p] for p in delivering)
        return max(self.newest.values(), default=-math.inf)

    def close(self, watermark: float) -> list[EntityDelta]:
        """Close every epoch that ended before `watermark`; one delta per close that applied events."""
        if math.isinf(watermark):
            return []
        target = math.floor(watermark / self.config.entity_epoch_s)
        if target <= self.table.epoch:
            return []
        self.table.order_queue()
        waiting = self.table.queued_epochs(self.config.entity_epoch_s)
        # a late event is applied at the next close, with the events of the epoch the table stands at
        closes = np.unique(np.maximum(waiting + 1, self.table.epoch + 1))
        closed = self.table.close_epochs(closes[closes <= target].astype(np.int64).tolist(), self.config)
        deltas = [EntityDelta(epoch, keys, floats, ints) for epoch, keys, floats, ints in closed]
        self.table.epoch = float(target)
        return deltas

    def _count_late(self, times: np.ndarray) -> None:
        if not math.isinf(self.table.epoch):
            self.late_events += int((times < self.table.epoch * self.config.entity_epoch_s).sum())
