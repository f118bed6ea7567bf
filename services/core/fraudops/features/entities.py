"""The entity table: state per merchant, terminal, device, IP and beneficiary, and its epoch queue.

Rows are keyed by the entity's stable hash salted with its table, so one dense array serves all
five tables. Events wait in a queue until their epoch closes (the kernel closes it), so the table
a transaction reads is the one published at the start of its epoch. The whole table, queue and
epoch included, round-trips through `snapshot`/`restore`: a restarted component continues exactly.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fraudops.errors import ConfigurationError
from fraudops.features import layout as L
from fraudops.features.entity_kernel import ingest
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

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self, keys: np.ndarray) -> np.ndarray:
        """Rows of [n, 5] entity hashes (0 = none → -1), creating rows for new entities."""
        salted = np.where(keys != 0, keys ^ _SALTS[: keys.shape[1]], 0)
        unique, inverse = np.unique(salted, return_inverse=True)
        found = np.empty(len(unique), dtype=np.int64)
        rows = self._rows
        for j, key in enumerate(unique.tolist()):
            if key == 0:
                found[j] = -1
                continue
            row = rows.get(key)
            if row is None:
                row = rows[key] = len(rows)
            found[j] = row
        self._grow()
        return found[inverse.reshape(keys.shape)]

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
    def from_arrays(cls, data: Mapping[str, np.ndarray]) -> EntityTable:
        expected = [L.N_ENTITY_FLOAT, L.N_ENTITY_INT, L.N_QF, L.N_QI, len(ENTITY_TABLES)]
        if data["entity_header"].tolist() != expected:
            raise ConfigurationError(
                "the entity table snapshot has another layout: rebuild it by replaying history"
            )
        table = cls()
        keys = data["entity_keys"]
        table._rows = dict(zip(keys.tolist(), range(len(keys)), strict=True))
        table._grow()
        table.floats[: len(keys)] = data["entity_floats"]
        table.ints[: len(keys)] = data["entity_ints"]
        table.queued = len(data["entity_queue_f"])
        table.reserve_queue(0)
        table.queue_f[: table.queued] = data["entity_queue_f"]
        table.queue_i[: table.queued] = data["entity_queue_i"]
        table.epoch = float(data["entity_epoch"][0])
        return table

    def memory_bytes(self) -> int:
        """Bytes held by the arrays (the key map adds ~100 bytes an entity on top)."""
        return sum(a.nbytes for a in (self.floats, self.ints, self.queue_f, self.queue_i))
