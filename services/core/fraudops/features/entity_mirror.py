"""A scorer's read-only copy of the published entity table, readable at any recent epoch.

The entity-state component publishes, for every epoch it closes, the rows that changed (an
`EntityDelta`). A mirror applies them in order. A stream consumer reads several partitions at
their own paces, so one batch may hold transactions of an epoch the mirror has already moved past:
the mirror keeps, for the last `keep_epochs` deltas, the rows each one overwrote (before-images),
and reads an older epoch by undoing the newer deltas for the entities a transaction names. Every
transaction is read at the start of its own epoch, as the offline replay reads it
(docs/entity-features.md).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from fraudops.errors import ConfigurationError
from fraudops.features import layout as L
from fraudops.features.entities import EntityTable, salted_keys
from fraudops.features.entity_kernel import ENTITY_FIRST, read_entity_features
from fraudops.features.spec import FeatureConfig

_LAYOUT = np.asarray([L.N_ENTITY_FLOAT, L.N_ENTITY_INT])


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
class _Undo:
    epoch: int  # the delta that overwrote these rows
    keys: np.ndarray  # sorted salted keys
    floats: np.ndarray  # the rows before the delta (zeros: the entity was not there yet)
    ints: np.ndarray


class EntityMirror:
    """The published table at `epoch`, with the before-images of its last `keep_epochs` deltas."""

    def __init__(self, table: EntityTable, epoch: int, keep_epochs: int = 120) -> None:
        self.table = table
        self.epoch = epoch
        self.keep_epochs = keep_epochs
        self._undo: deque[_Undo] = deque()
        #: epochs from this one on are read exactly (older ones lie before what the undo history reaches)
        self.oldest_readable_epoch = epoch
        #: entity reads at an epoch older than that (read from a newer table instead)
        self.stale_reads = 0
        # The table's keys sorted, with their rows: a batch's lookups are one vectorised search, where the
        # table's dict would cost a Python call per entity (rebuilt after a delta that added entities).
        self._sorted_keys = np.empty(0, dtype=np.int64)
        self._sorted_rows = np.empty(0, dtype=np.int64)
        self._index_entities = -1

    def apply(self, delta: EntityDelta) -> None:
        """Move to the delta's epoch (deltas come in ascending epochs)."""
        if delta.epoch <= self.epoch:
            raise ValueError(f"delta of epoch {delta.epoch} does not follow the mirror's epoch {self.epoch}")
        order = np.argsort(delta.keys)
        keys = delta.keys[order]
        existing = self.table.rows_of_salted(keys, create=False)
        before_f = np.zeros((len(keys), L.N_ENTITY_FLOAT))
        before_i = np.zeros((len(keys), L.N_ENTITY_INT), dtype=np.int64)
        known = existing >= 0
        before_f[known] = self.table.floats[existing[known]]
        before_i[known] = self.table.ints[existing[known]]
        self._undo.append(_Undo(delta.epoch, keys, before_f, before_i))
        while len(self._undo) > self.keep_epochs:
            self.oldest_readable_epoch = self._undo.popleft().epoch
        self.table.apply_rows(keys, delta.floats[order], delta.ints[order])
        self.epoch = delta.epoch

    def advance(self, epoch: int) -> None:
        """The table stands at `epoch` (no delta between the last one applied and it changed a row)."""
        self.epoch = max(self.epoch, epoch)

    def features(self, times: np.ndarray, keys: np.ndarray, config: FeatureConfig, out: np.ndarray) -> None:
        """Fill the entity features of `out` ([n, N_FEATURES]) for transactions at `times` naming `keys`.

        Each transaction reads the table at its own epoch's start: the mirror must already stand at
        that epoch or later (a transaction of a later epoch reads the newest table, decayed to its own
        epoch's start: the gateway's case when the component lags).
        """
        epochs = np.floor(times / config.entity_epoch_s)
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
        for undo in reversed(self._undo):  # newest first: the oldest before-image that applies wins
            behind = flat_epochs < undo.epoch
            if not behind.any():
                break
            where = np.flatnonzero(behind & (flat_keys != 0))
            position = np.searchsorted(undo.keys, flat_keys[where])
            position = np.minimum(position, len(undo.keys) - 1)
            hit = undo.keys[position] == flat_keys[where] if len(undo.keys) else np.zeros(len(where), bool)
            block_f[where[hit]] = undo.floats[position[hit]]
            block_i[where[hit]] = undo.ints[position[hit]]
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


def epoch_segments(times: np.ndarray, config: FeatureConfig, max_span_epochs: int) -> list[slice]:
    """Cut a batch (in arrival order) into runs whose epochs span at most `max_span_epochs`.

    A mirror moved to a run's newest epoch reads the run's oldest epoch through its undo history,
    which reaches back `keep_epochs`: a batch of a sparse or lagging history can span more than that.
    """
    epochs = np.floor(times / config.entity_epoch_s)
    segments = []
    start = 0
    low = high = epochs[0] if len(epochs) else 0.0
    for i, epoch in enumerate(epochs.tolist()):
        low, high = min(low, epoch), max(high, epoch)
        if high - low > max_span_epochs:
            segments.append(slice(start, i))
            start, low, high = i, epoch, epoch
    if len(epochs):
        segments.append(slice(start, len(epochs)))
    return segments
