"""A scorer's read-only copy of the published entity table, readable at any recent epoch.

The entity-state component publishes, for every epoch it closes, the rows that changed (an
`EntityDelta`). A mirror applies them in order and keeps what each one changed (the rows before
and after), so it can stand at any epoch its history reaches. A stream consumer reads several
partitions at their own paces, so a batch may hold transactions of epochs far apart, in any order:
`read_in_epoch_order` reads them by epoch, moving the mirror back or forth as needed. Every
transaction is read at the start of its own epoch, as the offline replay reads it
(docs/entity-features.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fraudops.errors import ConfigurationError
from fraudops.features import layout as L
from fraudops.features.entities import EntityTable, salted_keys
from fraudops.features.entity_kernel import ENTITY_FIRST, read_entity_features
from fraudops.features.spec import FeatureConfig

_LAYOUT = np.asarray([L.N_ENTITY_FLOAT, L.N_ENTITY_INT])
#: the epochs one read of a batch spans (each record read through the changes between its epoch and the
#: run's newest: a longer run costs more per record, a shorter one more runs for a sparse history)
RUN_EPOCHS = 30


@dataclass(frozen=True)
class EntityDelta:
    """The rows an epoch close changed, as they are once the table stands at `epoch`."""

    epoch: int
    keys: np.ndarray  # int64 salted keys
    floats: np.ndarray  # [n, N_ENTITY_FLOAT]
    ints: np.ndarray  # [n, N_ENTITY_INT]

    def to_bytes(self) -> bytes:
        """Layout widths and row count, then the keys, float rows and int rows as raw little-endian arrays
        (a consumer applies one delta per epoch of a batch: no per-array header to parse)."""
        header = np.asarray([*_LAYOUT, len(self.keys)], dtype="<i8").tobytes()
        return (
            header
            + np.ascontiguousarray(self.keys, dtype="<i8").tobytes()
            + np.ascontiguousarray(self.floats, dtype="<f8").tobytes()
            + np.ascontiguousarray(self.ints, dtype="<i8").tobytes()
        )

    @classmethod
    def from_bytes(cls, epoch: int, body: bytes) -> EntityDelta:
        width_f, width_i, rows = np.frombuffer(body, dtype="<i8", count=3).tolist()
        if [width_f, width_i] != _LAYOUT.tolist():
            raise ConfigurationError(
                f"the published entity rows of epoch {epoch} have another layout: "
                "restart the entity-state component from a replay of history"
            )
        offset = 24
        keys = np.frombuffer(body, dtype="<i8", count=rows, offset=offset)
        offset += 8 * rows
        floats = np.frombuffer(body, dtype="<f8", count=rows * width_f, offset=offset).reshape(rows, width_f)
        offset += 8 * rows * width_f
        ints = np.frombuffer(body, dtype="<i8", count=rows * width_i, offset=offset).reshape(rows, width_i)
        return cls(epoch, keys, floats, ints)


@dataclass(frozen=True)
class _Change:
    """What one delta did to the mirror's table: the rows before it and after it (sorted keys)."""

    epoch: int  # the delta's epoch
    keys: np.ndarray  # sorted salted keys
    before_f: np.ndarray  # the rows before the delta (zeros: the entity was not there yet)
    before_i: np.ndarray
    after_f: np.ndarray  # the rows the delta wrote
    after_i: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.keys)


class EntityMirror:
    """The published table, standing at `epoch`, able to move back and forth through its history.

    The history holds every delta applied since the mirror started (or since `forget_before`): the
    rows each one overwrote and the rows it wrote. `move_to` undoes or redoes deltas to stand at any
    epoch from `oldest_readable_epoch` to `newest_epoch`; `features` reads each transaction at its own
    epoch, undoing (for the entities it names only) the deltas between it and where the table stands.
    `keep_epochs` and `max_history_rows` bound the history (the oldest changes are forgotten first).
    """

    def __init__(
        self,
        table: EntityTable,
        epoch: int,
        keep_epochs: int | None = 120,
        max_history_rows: int = 200_000,
    ) -> None:
        self.table = table
        self.epoch = epoch  # the epoch the table stands at
        self.newest_epoch = epoch  # the newest epoch it can stand at (the published one it has reached)
        self.keep_epochs = keep_epochs
        self.max_history_rows = max_history_rows
        self._history: list[_Change] = []
        self._applied = 0  # the first `_applied` changes of the history are in the table
        self._history_rows = 0
        #: epochs from this one on are read exactly (older ones lie before what the history reaches)
        self.oldest_readable_epoch = epoch
        #: entity reads at an epoch older than that (read from a newer table instead)
        self.stale_reads = 0
        # The table's keys sorted, with their rows: a batch's lookups are one vectorised search, where the
        # table's dict would cost a Python call per entity (rebuilt after a delta that added entities).
        self._sorted_keys = np.empty(0, dtype=np.int64)
        self._sorted_rows = np.empty(0, dtype=np.int64)
        self._index_entities = -1

    def apply(self, delta: EntityDelta) -> None:
        """Take the next published delta (deltas come in ascending epochs); the mirror then stands at it."""
        if delta.epoch <= self.newest_epoch:
            raise ValueError(
                f"delta of epoch {delta.epoch} does not follow the mirror's epoch {self.newest_epoch}"
            )
        self.move_to(self.newest_epoch)
        order = np.argsort(delta.keys)
        keys = delta.keys[order]
        existing = self.table.rows_of_salted(keys, create=False)
        before_f = np.zeros((len(keys), L.N_ENTITY_FLOAT))
        before_i = np.zeros((len(keys), L.N_ENTITY_INT), dtype=np.int64)
        known = existing >= 0
        before_f[known] = self.table.floats[existing[known]]
        before_i[known] = self.table.ints[existing[known]]
        change = _Change(delta.epoch, keys, before_f, before_i, delta.floats[order], delta.ints[order])
        self.table.apply_rows(keys, change.after_f, change.after_i)
        self._history.append(change)
        self._applied = len(self._history)
        self._history_rows += change.rows
        self.epoch = self.newest_epoch = delta.epoch
        if self.keep_epochs is not None:
            self.forget_before(self.epoch - self.keep_epochs)
        while self._history_rows > self.max_history_rows and self._applied > 1:
            self._forget_first()

    def advance(self, epoch: int) -> None:
        """The component has published up to `epoch` (no delta after the last one applied changed a row)."""
        at_newest = self.epoch == self.newest_epoch
        self.newest_epoch = max(self.newest_epoch, epoch)
        if at_newest:
            self.epoch = self.newest_epoch

    def move_to(self, epoch: int) -> None:
        """Stand at `epoch` (within what the history reaches: clamped to it), undoing or redoing deltas."""
        epoch = min(max(epoch, self.oldest_readable_epoch), self.newest_epoch)
        while self._applied > 0 and self._history[self._applied - 1].epoch > epoch:
            self._applied -= 1
            change = self._history[self._applied]
            self.table.apply_rows(change.keys, change.before_f, change.before_i)
        while self._applied < len(self._history) and self._history[self._applied].epoch <= epoch:
            change = self._history[self._applied]
            self.table.apply_rows(change.keys, change.after_f, change.after_i)
            self._applied += 1
        self.epoch = epoch

    def forget_before(self, epoch: int) -> None:
        """Reads older than `epoch` will not come: drop the history only they would need."""
        while self._applied > 0 and self._history[0].epoch <= epoch:
            self._forget_first()

    def _forget_first(self) -> None:
        change = self._history.pop(0)
        self._applied -= 1
        self._history_rows -= change.rows
        self.oldest_readable_epoch = max(self.oldest_readable_epoch, change.epoch)

    def features(self, times: np.ndarray, keys: np.ndarray, config: FeatureConfig, out: np.ndarray) -> None:
        """Fill the entity features of `out` ([n, N_FEATURES]) for transactions at `times` naming `keys`.

        Each transaction reads the table at its own epoch's start: the mirror must stand at that epoch
        or later (a transaction of a later epoch reads the newest table, decayed to its own epoch's
        start: the gateway's case when the component lags). `read_in_epoch_order` moves the mirror
        for a batch of any epochs.
        """
        epochs = config.read_epochs(times)
        salted = salted_keys(keys)
        rows = self._rows_of(salted)
        block_f = np.zeros((rows.size, L.N_ENTITY_FLOAT))
        block_i = np.zeros((rows.size, L.N_ENTITY_INT), dtype=np.int64)
        flat = rows.ravel()
        known = flat >= 0
        block_f[known] = self.table.floats[flat[known]]
        block_i[known] = self.table.ints[flat[known]]
        flat_keys = salted.ravel()
        flat_epochs = np.repeat(epochs, keys.shape[1])
        too_old = epochs < self.oldest_readable_epoch
        self.stale_reads += int(too_old.sum())
        # the applied changes, newest first: the oldest before-image that applies wins
        for change in reversed(self._history[: self._applied]):
            behind = flat_epochs < change.epoch
            if not behind.any():
                break
            where = np.flatnonzero(behind & (flat_keys != 0))
            position = np.searchsorted(change.keys, flat_keys[where])
            position = np.minimum(position, len(change.keys) - 1)
            hit = (
                change.keys[position] == flat_keys[where] if len(change.keys) else np.zeros(len(where), bool)
            )
            block_f[where[hit]] = change.before_f[position[hit]]
            block_i[where[hit]] = change.before_i[position[hit]]
        block_rows = np.where(flat_keys != 0, np.arange(rows.size), -1).reshape(rows.shape)
        entity_out = np.zeros((len(times), out.shape[1]), dtype=np.float64)
        read_entity_features(
            block_f,
            block_i,
            block_rows,
            times,
            epochs,
            config.entity_epoch_s,
            config.label_delay_s,
            entity_out,
        )
        out[:, ENTITY_FIRST:] = entity_out[:, ENTITY_FIRST:]

    def _rows_of(self, salted: np.ndarray) -> np.ndarray:
        """Rows of salted keys (any shape; unknown or 0 → -1)."""
        entities = len(self.table)
        if self._index_entities != entities:
            keys = self.table.keys[:entities]
            order = np.argsort(keys, kind="stable")
            self._sorted_keys, self._sorted_rows = keys[order], order.astype(np.int64)
            self._index_entities = entities
        if not entities:
            return np.full(salted.shape, -1, dtype=np.int64)
        # sorted queries walk the index in order (several times faster than scattered ones)
        unique, inverse = np.unique(salted.ravel(), return_inverse=True)
        position = np.minimum(np.searchsorted(self._sorted_keys, unique), entities - 1)
        found = (self._sorted_keys[position] == unique) & (unique != 0)
        return np.where(found, self._sorted_rows[position], -1)[inverse].reshape(salted.shape)


def read_in_epoch_order(
    mirror: EntityMirror, times: np.ndarray, keys: np.ndarray, config: FeatureConfig, out: np.ndarray
) -> None:
    """Fill the entity features of `out` for a batch in any order of epochs, each at its own epoch.

    A stream consumer reads several partitions at their own paces: one batch can hold a partition's
    records of one day after another's of a later day, and the next batch can go back again. The
    records are read in epoch order, in runs spanning at most RUN_EPOCHS: the mirror moves (back or
    forth) to a run's newest epoch and reads the run's older records through the changes since theirs.
    The mirror must hold the published deltas up to the batch's newest epoch.
    """
    epochs = config.read_epochs(times)
    order = np.argsort(epochs, kind="stable")
    ordered = epochs[order]
    block = np.empty((len(times), out.shape[1]))
    start = 0
    while start < len(order):
        end = int(np.searchsorted(ordered, ordered[start] + RUN_EPOCHS, side="right"))
        run = order[start:end]
        mirror.move_to(int(ordered[end - 1]))
        mirror.features(times[run], keys[run], config, block[: len(run)])
        out[run, ENTITY_FIRST:] = block[: len(run), ENTITY_FIRST:]
        start = end
