"""The consumer's feature state, partition by partition: checkpoint on revoke, restore on assign.

Records are keyed by customer, so a customer's transactions all live in one partition and its
state moves with that partition. A checkpoint of partition p is (next offset N, every customer of
p as of offset N), written in one PostgreSQL transaction. Restoring p loads that and replays the
records from N up to the group's committed offset in state-only mode, so the state is exact.

A checkpoint only ever holds the effects of records at or before its offset, and only of records
that are stored: a partition is checkpointed only "at rest", when every record its state has seen
is written (stored, its alerts and dead letters delivered). A batch that failed on its way to
PostgreSQL leaves its partitions ahead of what is stored, and they are not checkpointed; the next
owner replays them from the previous checkpoint.

Fraud labels are not partitioned: every consumer reads them all. What labels wrote into a customer's
row is rebuilt when the row is restored, from the labels the restoring engine has applied (see
`fraudops.features.engine`), so the checkpoint needs no label watermark and a label applied by the
previous owner is not counted again by the next one.

Behind `StateCheckpoints`, the durable store (PostgreSQL) and an in-memory one for unit tests.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from psycopg_pool import ConnectionPool

from fraudops import statestore
from fraudops.features.engine import FeatureEngine, PackedRows
from fraudops.features.spec import FEATURE_VERSION

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checkpoint:
    next_offset: int
    customers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class Snapshot:
    """A partition's changed customers as of `next_offset`, taken on the consumer's thread, saved on any."""

    partition: int
    next_offset: int
    customers: PackedRows  # compressed while it waits to be written
    taken: set[str]  # the customers whose changes it holds (changed again if the save fails)


class StateCheckpoints(Protocol):
    def save(
        self, partition: int, next_offset: int, customers: Iterable[tuple[str, bytes]], rest: float = 0.0
    ) -> None:
        """Store the partition's next offset and these customers' rows (other customers' rows stay);
        with `rest`, spread over time (`fraudops.statestore.save_customers`)."""

    def load(self, partition: int) -> Checkpoint | None: ...


class PostgresCheckpoints:
    """Checkpoints in `feature_checkpoints` (offset) and `customer_feature_state` (customers)."""

    def __init__(self, pool: ConnectionPool, group: str, topic: str) -> None:
        self.pool = pool
        self.group = group
        self.topic = topic

    def save(
        self, partition: int, next_offset: int, customers: Iterable[tuple[str, bytes]], rest: float = 0.0
    ) -> None:
        with self.pool.connection() as conn, conn.transaction():
            saved = statestore.save_customers(
                conn, self.topic, ((c, partition, blob) for c, blob in customers), rest
            )
            conn.execute(
                """INSERT INTO feature_checkpoints (consumer_group, topic, partition, next_offset, feature_version,
                       entities, state) VALUES (%s, %s, %s, %s, %s, %s, '')
                   ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset,
                       feature_version = EXCLUDED.feature_version, entities = EXCLUDED.entities, created_at = now()""",
                (self.group, self.topic, partition, next_offset, FEATURE_VERSION, saved),
            )

    def load(self, partition: int) -> Checkpoint | None:
        with self.pool.connection() as conn:
            row = conn.execute(
                """SELECT next_offset FROM feature_checkpoints
                   WHERE consumer_group = %s AND topic = %s AND partition = %s AND feature_version = %s""",
                (self.group, self.topic, partition, FEATURE_VERSION),
            ).fetchone()
            if row is None:
                return None
            return Checkpoint(int(row[0]), statestore.load_partition(conn, self.topic, partition))


class MemoryCheckpoints:
    def __init__(self) -> None:
        self.saved: dict[int, Checkpoint] = {}

    def save(
        self, partition: int, next_offset: int, customers: Iterable[tuple[str, bytes]], rest: float = 0.0
    ) -> None:
        """Like the PostgreSQL store: the customers given replace theirs, the others stay."""
        previous = dict(self.saved[partition].customers) if partition in self.saved else {}
        previous.update(customers)
        self.saved[partition] = Checkpoint(next_offset, list(previous.items()))

    def load(self, partition: int) -> Checkpoint | None:
        return self.saved.get(partition)


class PartitionedState:
    """A FeatureEngine plus which customers belong to which partition, and each partition's position."""

    def __init__(self, engine: FeatureEngine, checkpoints: StateCheckpoints) -> None:
        self.engine = engine
        self.checkpoints = checkpoints
        self.customers: dict[int, set[str]] = defaultdict(set)
        # Customers whose state changed since the partition's last checkpoint: only they are written,
        # the others' stored rows are still their state as of the new checkpoint's offset.
        self.dirty: dict[int, set[str]] = defaultdict(set)
        self.position: dict[int, int] = {}  # next offset whose record is not yet in the state
        self.stored: dict[int, int] = {}  # next offset whose record is not yet written (stored, delivered)

    def touch(self, partition: int, customer_ids: list[str]) -> None:
        """These customers of `partition` were just advanced by its records."""
        self.customers[partition].update(customer_ids)
        self.dirty[partition].update(customer_ids)

    def advanced(self, partition: int, next_offset: int) -> None:
        """The partition's records before `next_offset` are in the state."""
        self.position[partition] = max(self.position.get(partition, 0), next_offset)

    def written(self, offsets: dict[int, int]) -> None:
        """The records before these offsets are written (partitions that left meanwhile are ignored)."""
        for partition, next_offset in offsets.items():
            if partition in self.position:
                self.stored[partition] = max(self.stored.get(partition, 0), next_offset)

    def at_rest(self, partition: int) -> bool:
        """Every record the partition's state has seen is written: its state may be checkpointed."""
        return partition in self.position and self.stored.get(partition) == self.position[partition]

    def snapshot(self, partition: int) -> Snapshot:
        """The partition's changed customers at its current position, which must be at rest."""
        if not self.at_rest(partition):
            raise ValueError(
                f"partition {partition}'s state is ahead of its written records "
                f"({self.position.get(partition)} > {self.stored.get(partition)}): not checkpointed"
            )
        taken, self.dirty[partition] = self.dirty[partition], set()
        return Snapshot(partition, self.position[partition], self.engine.export_packed(taken), taken)

    def save(self, snapshot: Snapshot, rest: float = 0.0) -> None:
        """Write a snapshot (safe off the consumer's thread: it touches no engine state); `rest`: see
        `StateCheckpoints.save`."""
        self.checkpoints.save(snapshot.partition, snapshot.next_offset, snapshot.customers, rest)

    def unsaved(self, snapshot: Snapshot) -> None:
        """A snapshot's save failed: its customers count as changed again (if the partition is still ours)."""
        if snapshot.partition in self.position:
            self.dirty[snapshot.partition] |= snapshot.taken

    def checkpoint(self, partition: int) -> int | None:
        """Write partition's state at its current position; returns the number of customers written,
        or None when the state is ahead of the written records (see the module docstring)."""
        if not self.at_rest(partition):
            return None
        snapshot = self.snapshot(partition)
        try:
            self.save(snapshot)
        except Exception:
            self.unsaved(snapshot)
            raise
        return len(snapshot.customers)

    def restore(self, partition: int) -> int | None:
        """Load a partition's checkpoint; returns the offset to resume state from (None: from the start)."""
        checkpoint = self.checkpoints.load(partition)
        if checkpoint is None:
            return None
        self.engine.import_customers(checkpoint.customers)
        self.customers[partition] = {customer_id for customer_id, _ in checkpoint.customers}
        self.position[partition] = self.stored[partition] = checkpoint.next_offset
        return checkpoint.next_offset

    def release(self, partition: int) -> None:
        """Forget a partition that moved to another consumer."""
        self.engine.forget(self.customers.pop(partition, set()))
        self.dirty.pop(partition, None)
        self.position.pop(partition, None)
        self.stored.pop(partition, None)
