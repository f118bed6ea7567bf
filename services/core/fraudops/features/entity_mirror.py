"""A scorer's read-only copy of the published entity table, readable at any recent epoch.

The entity-state component publishes, for every epoch it closes, the rows that changed (an
`EntityDelta`). A mirror applies them in order — many at once, in one vectorised step — and keeps,
for every row each one changed, the row as it was before (`ChangeHistory`). The table itself always
stands at the newest epoch applied; a read at an older epoch takes, for each entity it names, the
before-image of the entity's first change after that epoch (or the current row when there is none).
A stream consumer reads several partitions at their own paces, so a batch may hold transactions of
epochs far apart, in any order: each reads at its epoch (`FeatureConfig.read_epochs`) in the same vectorised read, as the
offline replay reads it (docs/entity-features.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from fraudops.errors import ConfigurationError
from fraudops.features import layout as L
from fraudops.features.entities import EntityTable, check_snapshot_layout, salted_keys
from fraudops.features.entity_kernel import ENTITY_FIRST, read_entity_features
from fraudops.features.spec import FeatureConfig

_LAYOUT = np.asarray([L.N_ENTITY_FLOAT, L.N_ENTITY_INT])
_INITIAL_ROWS = 1024
#: rows a mirror's table grows by (~5 MB)
_GROWTH_ROWS = 16_384
#: a history entry's sort code is `row << 32 | epoch`: rows and epochs each below 2**31 (epochs of
#: 60 s reach 2**31 in the year 6000)
_EPOCH_BITS = 32
#: the most changed rows a mirror applies in one vectorised step
APPLY_STEP_ROWS = 50_000


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


class MirrorTable:
    """The published rows, found by salted key through a sorted index.

    The component's `EntityTable` maps keys to rows with a dict (it creates rows one batch of events at a
    time); a mirror only looks rows up in bulk, so a sorted index serves it without ~100 bytes of Python
    objects an entity."""

    def __init__(
        self, keys: np.ndarray | None = None, floats: np.ndarray | None = None, ints: np.ndarray | None = None
    ) -> None:
        n = 0 if keys is None else len(keys)
        capacity = max(_INITIAL_ROWS, n)
        self.keys = np.zeros(capacity, dtype=np.int64)  # each row's salted key
        self.floats = np.zeros((capacity, L.N_ENTITY_FLOAT))
        self.ints = np.zeros((capacity, L.N_ENTITY_INT), dtype=np.int64)
        self._rows = n
        if keys is not None and floats is not None and ints is not None:
            self.keys[:n] = keys
            self.floats[:n] = floats
            self.ints[:n] = ints
        order = np.argsort(self.keys[:n], kind="stable")
        self._sorted_keys = self.keys[:n][order]
        self._sorted_rows = order.astype(np.int64)

    @classmethod
    def from_arrays(cls, data: Mapping[str, np.ndarray]) -> MirrorTable:
        """The table of a snapshot (`EntityTable.arrays`; its event queue is not a mirror's concern)."""
        check_snapshot_layout(data)
        return cls(data["entity_keys"], data["entity_floats"], data["entity_ints"])

    def entity_table(self) -> EntityTable:
        """The same rows as the component's table (the component resumes from what it published)."""
        n = self._rows
        return EntityTable.from_rows(self.keys[:n], self.floats[:n], self.ints[:n])

    def __len__(self) -> int:
        return self._rows

    def rows_of_salted(self, salted: np.ndarray, create: bool) -> np.ndarray:
        """Rows of salted keys (any shape; 0 = none → -1); unknown keys get new (zero) rows, or -1 without
        `create`."""
        # sorted queries walk the index in order (several times faster than scattered ones)
        unique, inverse = np.unique(salted.ravel(), return_inverse=True)
        n = self._rows
        position = np.searchsorted(self._sorted_keys, unique)
        if n:
            clipped = np.minimum(position, n - 1)
            found = (self._sorted_keys[clipped] == unique) & (unique != 0)
            rows = np.where(found, self._sorted_rows[clipped], -1)
        else:
            found = np.zeros(len(unique), dtype=bool)
            rows = np.full(len(unique), -1, dtype=np.int64)
        if create:
            new = ~found & (unique != 0)
            added = int(new.sum())
            if added:
                new_rows = np.arange(n, n + added, dtype=np.int64)
                self._reserve(n + added)
                self.keys[n : n + added] = unique[new]
                rows[new] = new_rows
                # `unique` is sorted: inserting before each one's search position keeps the index sorted
                self._sorted_keys = np.insert(self._sorted_keys, position[new], unique[new])
                self._sorted_rows = np.insert(self._sorted_rows, position[new], new_rows)
                self._rows = n + added
        return rows[inverse].reshape(salted.shape)

    def apply_rows(self, keys: np.ndarray, floats: np.ndarray, ints: np.ndarray) -> np.ndarray:
        """Overwrite (or add) the rows of these salted keys; returns their row numbers."""
        rows = self.rows_of_salted(keys, create=True)
        self.floats[rows] = floats
        self.ints[rows] = ints
        return rows

    def _reserve(self, needed: int) -> None:
        if needed <= len(self.keys):
            return
        # A fixed step, in place (realloc moves big blocks with mremap, without copying): a share of the
        # table held spare (a quarter: 75 MB at 1M entities) would count in the consumer's memory.
        capacity = -(-needed // _GROWTH_ROWS) * _GROWTH_ROWS
        self.floats.resize((capacity, L.N_ENTITY_FLOAT), refcheck=False)  # zero-filled
        self.ints.resize((capacity, L.N_ENTITY_INT), refcheck=False)
        self.keys.resize(capacity, refcheck=False)


class ChangeHistory:
    """For every row each applied delta changed: the delta's epoch, the row, and the row before it.

    Entries are kept in the order they were applied (ascending epochs: forgetting drops a prefix), with a
    sorted index of `row << 32 | epoch` codes, so that "the first change of row r after epoch e" is one
    binary search for a whole batch of reads. The row after a change is the next change's before-image,
    or the table's current row: it is not stored."""

    def __init__(self) -> None:
        self.epochs = np.zeros(0, dtype=np.int64)
        self.rows = np.zeros(0, dtype=np.int64)
        self.before_f = np.zeros((0, L.N_ENTITY_FLOAT))
        self.before_i = np.zeros((0, L.N_ENTITY_INT), dtype=np.int64)
        self.start = 0  # entries [start, end) are kept; those before `start` are forgotten
        self.end = 0
        self._codes = np.zeros(0, dtype=np.int64)  # sorted codes of the entries [start, end)
        self._positions = np.zeros(0, dtype=np.int64)  # their entries

    def __len__(self) -> int:
        return self.end - self.start

    def newest_epoch(self) -> int | None:
        return int(self.epochs[self.end - 1]) if len(self) else None

    def append(
        self, epochs: np.ndarray, rows: np.ndarray, before_f: np.ndarray, before_i: np.ndarray, room: int = 0
    ) -> None:
        """Entries in ascending epochs, all after the newest kept; (row, epoch) pairs distinct. `room`: the
        entries the arrays are sized for once they must grow (what the owner keeps, plus one step)."""
        added = len(epochs)
        if not added:
            return
        if int(epochs.max()) >= 2 ** (_EPOCH_BITS - 1) or int(epochs.min()) < 0:
            raise ValueError(
                f"entity epochs must lie in [0, 2**31): got {int(epochs.min())}..{int(epochs.max())}"
            )
        self._make_room(added, room)
        end = self.end + added
        self.epochs[self.end : end] = epochs
        self.rows[self.end : end] = rows
        self.before_f[self.end : end] = before_f
        self.before_i[self.end : end] = before_i
        codes = (rows << _EPOCH_BITS) | epochs
        order = np.argsort(codes, kind="stable")
        codes = codes[order]
        at = np.searchsorted(self._codes, codes)
        self._codes = np.insert(self._codes, at, codes)
        self._positions = np.insert(self._positions, at, self.end + order)
        self.end = end

    def forget_through(self, epoch: int) -> int | None:
        """Forget the entries of epochs up to `epoch`; returns the newest epoch forgotten (None: none)."""
        cut = self.start + int(np.searchsorted(self.epochs[self.start : self.end], epoch, side="right"))
        if cut == self.start:
            return None
        forgotten = int(self.epochs[cut - 1])
        kept = self._positions >= cut
        self._codes, self._positions = self._codes[kept], self._positions[kept]
        self.start = cut
        return forgotten

    def first_after(self, rows: np.ndarray, epochs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each (row, epoch): whether the row changed after the epoch, and the entry of its first change
        after it (whose before-image is the row as it stood at that epoch)."""
        if not len(self._codes):
            return np.zeros(len(rows), dtype=bool), np.zeros(len(rows), dtype=np.int64)
        index = np.searchsorted(self._codes, (rows << _EPOCH_BITS) | epochs, side="right")
        inside = index < len(self._codes)
        index = np.minimum(index, len(self._codes) - 1)
        # the same row, and (side="right", not clipped) a later epoch
        hit = inside & (rows >= 0) & ((self._codes[index] >> _EPOCH_BITS) == rows)
        return hit, self._positions[index]

    def _make_room(self, added: int, room: int) -> None:
        """Room for `added` entries: the forgotten ones are dropped when the arrays are full, and the arrays
        grow (doubling, up to `room` unless the kept ones need more) only when the kept ones need it."""
        capacity = len(self.epochs)
        if self.end + added <= capacity:
            return
        kept = self.end - self.start
        if self.start and kept + added <= capacity:
            self._compact()
            return
        grown = min(2 * capacity, room) if room else capacity + capacity // 4
        self._compact(max(kept + added, grown, _INITIAL_ROWS))

    def _compact(self, capacity: int | None = None) -> None:
        start, end = self.start, self.end
        if capacity is None:
            for array in (self.epochs, self.rows, self.before_f, self.before_i):
                array[: end - start] = array[start:end]  # numpy buffers overlapping copies
        else:
            self.epochs = _moved(self.epochs, start, end, capacity)
            self.rows = _moved(self.rows, start, end, capacity)
            self.before_f = _moved(self.before_f, start, end, capacity)
            self.before_i = _moved(self.before_i, start, end, capacity)
        self._positions -= start
        self.start, self.end = 0, end - start


def _moved(array: np.ndarray, start: int, end: int, capacity: int) -> np.ndarray:
    moved = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    moved[: end - start] = array[start:end]
    return moved


class EntityMirror:
    """The published table at its newest epoch, readable at any epoch its history reaches.

    `apply` takes published deltas (many in one step); `features` reads each transaction at its own
    epoch — from `oldest_readable_epoch` on exactly (older ones read the oldest table the history reaches,
    counted in `stale_reads`). `keep_epochs` and `max_history_rows` bound the history (the oldest changes
    are forgotten first), as does `forget_before` (reads older than that will not come).
    """

    def __init__(
        self,
        table: MirrorTable | None,
        epoch: int,
        keep_epochs: int | None = 120,
        max_history_rows: int = 200_000,
    ) -> None:
        self.table = table if table is not None else MirrorTable()
        self.newest_epoch = epoch  # the newest epoch it can read at (the published one it has reached)
        self.keep_epochs = keep_epochs
        self.max_history_rows = max_history_rows
        self.history = ChangeHistory()
        #: epochs from this one on are read exactly (older ones lie before what the history reaches)
        self.oldest_readable_epoch = epoch
        #: entity reads at an epoch older than that (read from a newer table instead)
        self.stale_reads = 0

    @property
    def epoch(self) -> int:
        """The epoch the table stands at: always the newest (older ones are read through the history)."""
        return self.newest_epoch

    def apply(self, deltas: EntityDelta | Sequence[EntityDelta]) -> None:
        """Take the next published deltas (ascending epochs, after the newest applied), many in one step."""
        if isinstance(deltas, EntityDelta):
            deltas = [deltas]
        epochs = [delta.epoch for delta in deltas]
        if epochs and (epochs[0] <= self.newest_epoch or any(b <= a for a, b in pairwise(epochs))):
            raise ValueError(
                f"deltas of epochs {epochs[0]}..{epochs[-1]} do not follow the mirror's epoch "
                f"{self.newest_epoch} in ascending order"
            )
        # steps of at most APPLY_STEP_ROWS changed rows (but whole deltas): a step's temporaries are
        # a few copies of its rows (~300 bytes each), and a rebuild may apply hundreds of large deltas
        step: list[EntityDelta] = []
        rows = 0
        for delta in deltas:
            if step and rows + len(delta.keys) > APPLY_STEP_ROWS:
                self._apply_step(step)
                step, rows = [], 0
            step.append(delta)
            rows += len(delta.keys)
        if step:
            self._apply_step(step)

    def _apply_step(self, deltas: Sequence[EntityDelta]) -> None:
        epochs = [delta.epoch for delta in deltas]
        keys = np.concatenate([delta.keys for delta in deltas])
        floats = np.concatenate([delta.floats for delta in deltas])
        ints = np.concatenate([delta.ints for delta in deltas])
        change_epochs = np.repeat(np.asarray(epochs, dtype=np.int64), [len(delta.keys) for delta in deltas])
        rows = self.table.rows_of_salted(keys, create=True)  # new entities: zero rows, as before their first
        # By row, each row's changes in epoch order: a change's before-image is the previous change's row,
        # or the table's row for the first; the table takes each row's last.
        order = np.argsort(rows, kind="stable")
        by_row = rows[order]
        repeat = np.zeros(len(rows), dtype=bool)
        repeat[1:] = by_row[1:] == by_row[:-1]
        before_f = self.table.floats[by_row]
        before_i = self.table.ints[by_row]
        previous = order[np.flatnonzero(repeat) - 1]
        before_f[repeat] = floats[previous]
        before_i[repeat] = ints[previous]
        last = np.ones(len(rows), dtype=bool)
        last[:-1] = ~repeat[1:]
        self.table.floats[by_row[last]] = floats[order[last]]
        self.table.ints[by_row[last]] = ints[order[last]]
        in_order_f = np.empty_like(before_f)
        in_order_i = np.empty_like(before_i)
        in_order_f[order] = before_f
        in_order_i[order] = before_i
        del before_f, before_i
        self.history.append(
            change_epochs, rows, in_order_f, in_order_i, room=self.max_history_rows + APPLY_STEP_ROWS
        )
        self.newest_epoch = epochs[-1]
        if self.keep_epochs is not None:
            self.forget_before(self.newest_epoch - self.keep_epochs)
        self._keep_within_budget()

    def advance(self, epoch: int) -> None:
        """The component has published up to `epoch` (no delta after the last one applied changed a row)."""
        self.newest_epoch = max(self.newest_epoch, epoch)

    def forget_before(self, epoch: int) -> None:
        """Reads older than `epoch` will not come: drop the history only they would need."""
        forgotten = self.history.forget_through(epoch)
        if forgotten is not None:
            self.oldest_readable_epoch = max(self.oldest_readable_epoch, forgotten)

    def _keep_within_budget(self) -> None:
        """Forget the oldest epochs' changes beyond `max_history_rows` (the newest epoch's always stay)."""
        history = self.history
        excess = len(history) - self.max_history_rows
        if excess <= 0:
            return
        epoch = int(history.epochs[history.start + excess - 1])
        newest = history.newest_epoch()
        if newest is not None and epoch >= newest:
            epoch = newest - 1
        self.forget_before(epoch)

    def read_rows(self, rows: np.ndarray, epochs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The float and int rows of table rows `rows` (-1: none → zeros) as they stood at `epochs` (clamped to
        `oldest_readable_epoch`; from the newest epoch on: the current rows)."""
        epochs = np.maximum(epochs, self.oldest_readable_epoch)
        block_f = np.zeros((len(rows), L.N_ENTITY_FLOAT))
        block_i = np.zeros((len(rows), L.N_ENTITY_INT), dtype=np.int64)
        known = rows >= 0
        block_f[known] = self.table.floats[rows[known]]
        block_i[known] = self.table.ints[rows[known]]
        changed, entries = self.history.first_after(rows, epochs)
        block_f[changed] = self.history.before_f[entries[changed]]
        block_i[changed] = self.history.before_i[entries[changed]]
        return block_f, block_i

    def features(self, times: np.ndarray, keys: np.ndarray, config: FeatureConfig, out: np.ndarray) -> None:
        """Fill the entity features of `out` ([n, N_FEATURES]) for transactions at `times` naming `keys`.

        Each transaction reads the table at the start of the epoch `FeatureConfig.read_epochs` gives it, in any order of epochs: the
        mirror must have applied the deltas up to the newest of them (a transaction of a later epoch reads
        the newest table, decayed to the start of the epoch it reads: the gateway's case when the component lags).
        """
        epochs = config.read_epochs(times)
        too_old = epochs < self.oldest_readable_epoch
        self.stale_reads += int(too_old.sum())
        salted = salted_keys(keys)
        rows = self.table.rows_of_salted(salted, create=False)
        block_f, block_i = self.read_rows(rows.ravel(), np.repeat(epochs, keys.shape[1]))
        block_rows = np.where(salted.ravel() != 0, np.arange(rows.size), -1).reshape(rows.shape)
        entity_out = np.zeros((len(times), out.shape[1]), dtype=np.float64)
        read_entity_features(
            block_f,
            block_i,
            block_rows,
            times,
            epochs.astype(np.float64),
            config.entity_epoch_s,
            config.label_delay_s,
            entity_out,
        )
        out[:, ENTITY_FIRST:] = entity_out[:, ENTITY_FIRST:]
