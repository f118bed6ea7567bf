"""When and how the consumer checkpoints feature state: periodically in the background, and at hand-over.

    tick()      between batches: every `interval_s`, the owned partitions are queued and checkpointed
                one at a time; the snapshot (the partition's changed customers) is taken on the
                consumer's thread, PostgreSQL is written on the checkpoint thread while the loop
                goes on consuming, a slice at a time with rests between (PERIODIC_REST). One partition
                at a time bounds the memory a snapshot holds.
    settle()    wait for the checkpoint in progress (partitions are about to move, or the process to stop)
    hand_over() checkpoint partitions synchronously before they leave (revoke, shutdown)

Only a partition at rest is checkpointed (`PartitionedState.at_rest`): its state then holds exactly
the records before the offset stored with it. A failed save leaves its customers changed, for the next.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

import psycopg

from fraudops_stream.state import PartitionedState, Snapshot

log = logging.getLogger(__name__)
#: a periodic checkpoint rests twice as long as each slice of it took (`statestore.save_customers`): a
#: round of six partitions of ~20,000 customers then takes ~10-12 s of a 30-s interval, at a third of a
#: core; `settle()` (a rebalance, a stop) waits for the partition in progress, rests included (~2 s)
PERIODIC_REST = 2.0


def due(now: float, last: float, interval_s: float, queued: bool) -> bool:
    """Whether a new round of periodic checkpoints starts (never while a round is still queued)."""
    return not queued and now - last >= interval_s


class CheckpointScheduler:
    def __init__(
        self, state: PartitionedState, interval_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.state = state
        self.interval_s = interval_s
        self.clock = clock
        self.last_round = clock()
        self.queued: list[int] = []
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._running: tuple[Future[None], Snapshot] | None = None

    def tick(self, drain: Callable[[], None]) -> bool:
        """Start a round when one is due, collect the checkpoint in progress, start the next queued one.

        `drain` waits for the batch being written, so the partition comes to rest. Returns True when a
        new round started (the consumer reports its lag then).
        """
        started = False
        if due(self.clock(), self.last_round, self.interval_s, bool(self.queued)):
            self.last_round = self.clock()
            self.queued = sorted(self.state.position)
            started = True
        if self._running is not None:
            if not self._running[0].done():
                return started
            self._collect()
        while self.queued:
            partition = self.queued.pop(0)
            if partition not in self.state.position:
                continue  # it moved to another consumer meanwhile
            drain()
            if not self.state.at_rest(partition):
                continue  # the batch failed on its way to PostgreSQL: nothing of this state may be saved
            snapshot = self.state.snapshot(partition)
            self._running = (self._thread.submit(self.state.save, snapshot, PERIODIC_REST), snapshot)
            break
        return started

    def settle(self) -> None:
        """Wait for the checkpoint in progress and drop the queued ones."""
        self.queued.clear()
        if self._running is not None:
            self._collect()

    def hand_over(self, partitions: Iterable[int]) -> None:
        """Checkpoint these partitions now (those at rest), before they leave this consumer."""
        self.settle()
        for partition in partitions:
            if partition not in self.state.position:
                continue  # nothing of it was ever in the state here (or it was handed over already)
            try:
                written = self.state.checkpoint(partition)
            except psycopg.Error as exc:  # the next owner replays from the previous checkpoint instead
                log.warning("checkpoint failed", extra={"partition": partition, "error": str(exc)})
                continue
            if written is None:
                log.warning(
                    "state ahead of the written records: not checkpointed; the next owner replays "
                    "from the previous checkpoint",
                    extra={"partition": partition},
                )
            else:
                log.info("state checkpointed", extra={"partition": partition, "customers": written})

    def close(self) -> None:
        self.settle()
        self._thread.shutdown(wait=True)

    def _collect(self) -> None:
        assert self._running is not None
        future, snapshot = self._running
        self._running = None
        try:
            future.result()
        except Exception as exc:  # noqa: BLE001 - any failure: the customers count as changed again
            self.state.unsaved(snapshot)
            log.warning(
                "periodic checkpoint failed", extra={"partition": snapshot.partition, "error": str(exc)}
            )
