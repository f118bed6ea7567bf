"""The entity table: state per merchant, terminal, device, IP and beneficiary, and its epoch queue.

Rows are keyed by the entity's stable hash salted with its table, so one dense array serves all
five tables. Events wait in a queue until their epoch closes (the kernel closes it), so the table
a transaction reads is the one published at the start of an epoch (`FeatureConfig.read_epochs`). The whole table, queue and
epoch included, round-trips through `snapshot`/`restore`: a restarted component continues exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fraudops.errors import ConfigurationError
from fraudops.features import layout as L
from fraudops.features.entity_kernel import apply_events, ingest
from fraudops.features.spec import ENTITY_TABLES, FeatureConfig

_INITIAL_ROWS = 1024
#: Per-table salts: a terminal and a device that share an id string are still different entities.
_SALTS = np.asarray(
    [0x5BD1E9955BD1E995, 0x27D4EB2F165667C5, 0x165667B19E3779F9, 0x1B873593CC9E2D51, 0x61C8864680B583EB],
    dtype=np.uint64,
).view(np.int64)


class EntityTable:
    """Dense rows for every entity seen, the queue of events not yet applied, and the current epoch."""

    def __init__(self) -> None:
        self._rows: dict[int, int] = {}
        self.floats = np.zeros((_INITIAL_ROWS, L.N_ENTITY_FLOAT))
        self.ints = np.zeros((_INITIAL_ROWS, L.N_ENTITY_INT), dtype=np.int64)
        self.queue_f = np.zeros((_INITIAL_ROWS, L.N_QF))
        self.queue_i = np.zeros((_INITIAL_ROWS, L.N_QI), dtype=np.int64)
        self.queued = 0
        self.epoch = -np.inf  # index of the epoch the table was last published for
        self.keys = np.zeros(_INITIAL_ROWS, dtype=np.int64)  # each row's salted key

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self, keys: np.ndarray) -> np.ndarray:
        """Rows of [n, 5] entity hashes (0 = none → -1), creating rows for new entities."""
        return self.rows_of_salted(salted_keys(keys), create=True)

    def rows_of_salted(self, salted: np.ndarray, create: bool) -> np.ndarray:
        """Rows of salted keys (any shape; 0 = none → -1); unknown keys get new rows, or -1 without `create`."""
        unique, inverse = np.unique(salted, return_inverse=True)
        found = np.empty(len(unique), dtype=np.int64)
        rows = self._rows
        new: list[int] = []
        for j, key in enumerate(unique.tolist()):
            row = rows.get(key, -1) if key != 0 else -1
            if row < 0 and create and key != 0:
                row = rows[key] = len(rows)
                new.append(key)
            found[j] = row
        self._grow()
        if new:
            self.keys[len(rows) - len(new) : len(rows)] = new
        return found[inverse.reshape(salted.shape)]

    # --- the entity-state component's side: events from every partition, closed epoch by epoch ------

    def queue_events(
        self, times: np.ndarray, fraud_times: np.ndarray, keys: np.ndarray, customer_hashes: np.ndarray
    ) -> None:
        """Queue events in any order (transactions: fraud time NaN; labels: known-at time and the
        labelled transaction's time); `close_epochs` applies them in the order the replay does."""
        rows = self.rows(keys)
        self.reserve_queue(len(times))
        end = self.queued + len(times)
        self.queue_f[self.queued : end, L.QF_TIME] = times
        self.queue_f[self.queued : end, L.QF_FRAUD_TIME] = fraud_times
        self.queue_i[self.queued : end, L.QI_ENTITY : L.QI_ENTITY + len(ENTITY_TABLES)] = rows
        self.queue_i[self.queued : end, L.QI_CUSTOMER] = customer_hashes
        self.queued = end

    def queued_epochs(self, epoch_s: float) -> np.ndarray:
        """The distinct epochs of the events waiting in the queue, ascending."""
        return np.unique(np.floor(self.queue_f[: self.queued, L.QF_TIME] / epoch_s))

    def order_queue(self) -> None:
        """Put the queue in the order training's replay applies events (before `close_epochs`).

        The replay queues events in event-time order, a fraud label after the transactions of its
        known-at instant and labels known at the same instant by their transactions' times; events
        gathered from many partitions in whatever order they arrived, put in that order, leave the
        table exactly as the replay does.
        """
        queued = self.queued
        qf, qi = self.queue_f[:queued], self.queue_i[:queued]
        is_label = ~np.isnan(qf[:, L.QF_FRAUD_TIME])
        order = np.lexsort((np.where(is_label, qf[:, L.QF_FRAUD_TIME], 0.0), is_label, qf[:, L.QF_TIME]))
        self.queue_f[:queued], self.queue_i[:queued] = qf[order], qi[order]

    def close_epochs(
        self, epochs: Sequence[int], config: FeatureConfig
    ) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """Close `epochs` (ascending) one after the other: apply the queued events (queue ordered) before
        each one's start; returns, for each, (epoch, `export_rows` of the rows its close changed).

        The same steps as the kernel's `close_epoch` per epoch, but the closed events leave the queue once
        at the end: moving the rest of the queue at every close costs a sparse history's thousands of
        epochs the whole queue each."""
        times = self.queue_f[: self.queued, L.QF_TIME]
        entities = slice(L.QI_ENTITY, L.QI_ENTITY + len(ENTITY_TABLES))
        closed = []
        applied = 0
        for epoch in epochs:
            due = int(np.searchsorted(times, epoch * config.entity_epoch_s, side="left"))
            changed = self.queue_i[applied:due, entities]
            changed = np.unique(changed[changed >= 0])
            apply_events(
                self.floats, self.ints, self.queue_f, self.queue_i, applied, due, config.label_delay_s
            )
            closed.append((epoch, *self.export_rows(changed)))
            applied = due
            self.epoch = max(self.epoch, epoch)
        rest = self.queued - applied
        self.queue_f[:rest] = self.queue_f[applied : self.queued]  # numpy buffers overlapping copies
        self.queue_i[:rest] = self.queue_i[applied : self.queued]
        self.queued = rest
        return closed

    def queued_entity_keys(self) -> np.ndarray:
        """The salted keys of the queued events' entities ([queued, tables], 0: none): what the queue refers
        to, whatever rows another table gives the same entities."""
        rows = self.queue_i[: self.queued, L.QI_ENTITY : L.QI_ENTITY + len(ENTITY_TABLES)]
        return np.where(rows >= 0, self.keys[np.maximum(rows, 0)], 0)

    def requeue(self, queue_f: np.ndarray, queue_i: np.ndarray, entity_keys: np.ndarray | None) -> None:
        """Put these events in the queue (after what it holds). `entity_keys` (`queued_entity_keys` of the
        table they were queued in) points them at this table's rows of the same entities; without them their
        row numbers are taken as they are (valid only if this table numbers its rows as that one did)."""
        queue_i = queue_i.copy()
        if entity_keys is not None:
            queue_i[:, L.QI_ENTITY : L.QI_ENTITY + len(ENTITY_TABLES)] = self.rows_of_salted(
                entity_keys, create=True
            )
        self.reserve_queue(len(queue_f))
        end = self.queued + len(queue_f)
        self.queue_f[self.queued : end] = queue_f
        self.queue_i[self.queued : end] = queue_i
        self.queued = end

    def export_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(salted keys, float rows, int rows) of these rows: what a mirror needs to update them."""
        return self.keys[rows].copy(), self.floats[rows].copy(), self.ints[rows].copy()

    def apply_rows(self, keys: np.ndarray, floats: np.ndarray, ints: np.ndarray) -> np.ndarray:
        """Overwrite (or add) the rows of these salted keys; returns their row numbers."""
        rows = self.rows_of_salted(keys, create=True)
        self.floats[rows] = floats
        self.ints[rows] = ints
        return rows

    def ingest(
        self, times: np.ndarray, keys: np.ndarray, customer_hashes: np.ndarray, config: FeatureConfig
    ) -> None:
        """Take transactions (event-time order) as the entity-state component does: no customer features."""
        rows = self.rows(keys)
        self.reserve_queue(len(times))
        self.queued, self.epoch = ingest(
            self.floats,
            self.ints,
            self.queue_f,
            self.queue_i,
            self.queued,
            self.epoch,
            times,
            rows,
            customer_hashes,
            config.entity_epoch_s,
            config.label_delay_s,
        )

    def reserve_queue(self, more: int) -> None:
        """Room for `more` events beyond those queued (the kernel cannot grow arrays)."""
        needed = self.queued + more
        if needed > len(self.queue_f):
            capacity = max(needed, 2 * len(self.queue_f))
            self.queue_f = np.resize(self.queue_f, (capacity, L.N_QF))
            self.queue_i = np.resize(self.queue_i, (capacity, L.N_QI))

    def _grow(self) -> None:
        needed = len(self._rows)
        if needed <= len(self.floats):
            return
        capacity = max(
            needed, len(self.floats) + len(self.floats) // 4
        )  # a quarter: at 1M entities, 75 MB not 150
        self.floats.resize((capacity, L.N_ENTITY_FLOAT), refcheck=False)
        self.ints.resize((capacity, L.N_ENTITY_INT), refcheck=False)
        self.keys.resize(capacity, refcheck=False)

    # --- checkpoints -----------------------------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        n = len(self._rows)
        return {
            "entity_header": np.asarray(
                [L.N_ENTITY_FLOAT, L.N_ENTITY_INT, L.N_QF, L.N_QI, len(ENTITY_TABLES)]
            ),
            "entity_keys": np.fromiter(self._rows.keys(), dtype=np.int64, count=n),
            "entity_floats": self.floats[:n],
            "entity_ints": self.ints[:n],
            "entity_queue_f": self.queue_f[: self.queued],
            "entity_queue_i": self.queue_i[: self.queued],
            "entity_epoch": np.asarray([self.epoch]),
        }

    @classmethod
    def from_rows(cls, keys: np.ndarray, floats: np.ndarray, ints: np.ndarray) -> EntityTable:
        """A table of these rows (row i: salted key keys[i]), its queue empty."""
        table = cls()
        table._rows = dict(zip(keys.tolist(), range(len(keys)), strict=True))
        table._grow()
        table.keys[: len(keys)] = keys
        table.floats[: len(keys)] = floats
        table.ints[: len(keys)] = ints
        return table

    @classmethod
    def from_arrays(cls, data: Mapping[str, np.ndarray]) -> EntityTable:
        check_snapshot_layout(data)
        table = cls.from_rows(data["entity_keys"], data["entity_floats"], data["entity_ints"])
        table.queued = len(data["entity_queue_f"])
        table.reserve_queue(0)
        table.queue_f[: table.queued] = data["entity_queue_f"]
        table.queue_i[: table.queued] = data["entity_queue_i"]
        table.epoch = float(data["entity_epoch"][0])
        return table

    def memory_bytes(self) -> int:
        """Bytes held by the arrays (the key map adds ~100 bytes an entity on top)."""
        return sum(a.nbytes for a in (self.floats, self.ints, self.queue_f, self.queue_i, self.keys))


def check_snapshot_layout(data: Mapping[str, np.ndarray]) -> None:
    """Refuse a snapshot (`EntityTable.arrays`) written with another row layout."""
    expected = [L.N_ENTITY_FLOAT, L.N_ENTITY_INT, L.N_QF, L.N_QI, len(ENTITY_TABLES)]
    if data["entity_header"].tolist() != expected:
        raise ConfigurationError(
            "the entity table snapshot has another layout: rebuild it by replaying history"
        )


def salted_keys(keys: np.ndarray) -> np.ndarray:
    """[n, 5] entity hashes (0 = none) as the table's keys: salted per table, 0 kept for none."""
    return np.where(keys != 0, keys ^ _SALTS[: keys.shape[1]], 0)
