"""The feature engine: per-customer state, label-risk tables and the kernel behind one small API.

    engine = FeatureEngine()                               # online services (entity table: see below)
    engine = FeatureEngine(entity_table=True)              # training's replay
    engine.attach_entities(mirror)                         # online: the published table (entity_mirror.py)
    features = engine.transform(encode_records(batch))   # features, then the state moves on
    engine.add_fraud_labels(labels)                        # applied when their known-at time passes
    rows = engine.export_customers(customer_ids)           # checkpoint rows; engine.import_customers(rows)

The same engine object serves the stream consumer (micro-batches), the gateway (batches of one)
and training (`replay` of a whole history), so there is exactly one feature definition.

The entity table (per merchant, terminal, device, IP and beneficiary: counts, label-delayed fraud
rates, distinct customers) needs every transaction of an entity, which one customer-partitioned
consumer does not see: it lives in the entity-state component (docs/entity-features.md). An engine
made with `entity_table=True` holds it in-process (training's replay); an online engine reads the
published table through an attached `EntityMirror`, and without one reports the entity features as
unknown (NaN).
Each label counts once for its customer, however the customer's row arrives: a row imported from a
checkpoint (written by another engine, which applied the labels it knew by then) or a customer seen
here for the first time gets the label part of its row rebuilt from the labels *this* engine has
applied; the labels still pending here reach it when they fall due. So a restart, a partition
moving between consumers, or a replay neither counts a label twice nor misses one, and needs no
label watermark in the checkpoint. (The label-risk tables are global: every engine applies every
label it is given to them once.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import pyarrow as pa

from fraudops.errors import ConfigurationError
from fraudops.features import layout as L
from fraudops.features.encode import EncodedBatch, encode_frame, stable_hash
from fraudops.features.entities import EntityTable
from fraudops.features.entity_kernel import ENTITY_FIRST
from fraudops.features.entity_mirror import EntityMirror
from fraudops.features.kernel import process_batch, relabel_customers
from fraudops.features.spec import FEATURE_VERSION, N_FEATURES, FeatureConfig

_INITIAL_CAPACITY = 1024
#: customers' state rows are added this many at a time (~15 MB)
_GROWTH_ROWS = 4096
# A per-customer state row starts with the feature version and the layout widths, so a row written
# by another build is recognised instead of silently misread.
_ROW_HEADER = b"FOPS" + np.asarray([FEATURE_VERSION, L.N_FLOAT_STATE, L.N_INT_STATE], dtype="<i4").tobytes()
_ROW_BYTES = len(_ROW_HEADER) + 8 * (L.N_FLOAT_STATE + L.N_INT_STATE)
#: The kernel's label input when no label is pending (it only reads it).
_NO_LABELS_F = np.empty((0, L.N_LF))
_NO_LABELS_I = np.empty((0, L.N_LI), dtype=np.int64)


@dataclass
class LabelEvents:
    """Confirmed frauds, each with the time the label became known and the keys of its transaction."""

    known_at: np.ndarray  # float64 epoch seconds
    customer_ids: np.ndarray  # object
    risk_keys: np.ndarray  # int64 [n, 5]: merchant, terminal, device, ip, beneficiary hashes
    #: when the labelled transaction happened (the entity table counts a fraud on that day);
    #: unknown ones count on the day the label became known
    event_times: np.ndarray = field(default_factory=lambda: np.empty(0))
    #: whether the entity table still has to count it (false for labels an entity table restored from a
    #: snapshot has already counted: the entity-state component keeps its own label position)
    to_entities: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=bool))

    def __post_init__(self) -> None:
        if len(self.event_times) != len(self.known_at):
            self.event_times = np.asarray(self.known_at, dtype=np.float64).copy()
        if len(self.to_entities) != len(self.known_at):
            self.to_entities = np.ones(len(self.known_at), dtype=bool)

    def __len__(self) -> int:
        return len(self.known_at)

    @classmethod
    def empty(cls) -> LabelEvents:
        return cls(np.empty(0), np.empty(0, dtype=object), np.empty((0, len(L.RISK_TABLES)), dtype=np.int64))

    @classmethod
    def concat(cls, parts: Sequence[LabelEvents]) -> LabelEvents:
        parts = [part for part in parts if len(part)]
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.known_at for p in parts]),
            np.concatenate([p.customer_ids for p in parts]),
            np.concatenate([p.risk_keys for p in parts]),
            np.concatenate([p.event_times for p in parts]),
            np.concatenate([p.to_entities for p in parts]),
        )

    def take(self, index: np.ndarray | slice) -> LabelEvents:
        return LabelEvents(
            self.known_at[index],
            self.customer_ids[index],
            self.risk_keys[index],
            self.event_times[index],
            self.to_entities[index],
        )


class _SlotMap:
    """Key → dense row number, growing on demand; released rows are reused before new ones."""

    def __init__(self) -> None:
        self.slots: dict[object, int] = {}
        self.free: list[int] = []
        self.rows = 0  # rows ever handed out: what the state arrays must hold

    def __len__(self) -> int:
        return len(self.slots)

    def release(self, keys: Iterable[object]) -> list[int]:
        """Forget keys; their rows go back to the pool. Returns the rows released."""
        released = [slot for slot in (self.slots.pop(key, None) for key in keys) if slot is not None]
        self.free.extend(released)
        return released

    def lookup(self, keys: Iterable[object], create: bool) -> np.ndarray:
        slots = self.slots
        out = []
        for key in keys:
            if key is None or key == 0:
                out.append(-1)
                continue
            slot = slots.get(key)
            if slot is None:
                if not create:
                    out.append(-1)
                    continue
                if self.free:
                    slot = self.free.pop()
                else:
                    slot = self.rows
                    self.rows += 1
                slots[key] = slot
            out.append(slot)
        return np.asarray(out, dtype=np.int64)


class PackedRows:
    """Customers' state rows (`FeatureEngine.export_customers`), LZ4-compressed in chunks; iterating yields
    `(customer_id, row)` as `export_customers` would. Measured on a drain's checkpoint: ~9x smaller."""

    CHUNK = 2048  # rows compressed together (~8 MB raw)

    def __init__(self) -> None:
        self._chunks: list[tuple[list[str], bytes]] = []
        self._rows = 0

    def add(self, customer_ids: list[str], block: np.ndarray) -> None:
        if customer_ids:
            # as bytes: the buffer LZ4 compresses into is sized for the worst case and not shrunk
            self._chunks.append((customer_ids, pa.compress(block, codec="lz4", asbytes=True)))
            self._rows += len(customer_ids)

    def __len__(self) -> int:
        return self._rows

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        for customer_ids, compressed in self._chunks:
            raw = pa.decompress(
                compressed, decompressed_size=len(customer_ids) * _ROW_BYTES, codec="lz4", asbytes=True
            )
            yield from _split_rows(customer_ids, raw)


def _split_rows(customer_ids: list[str], raw: bytes) -> list[tuple[str, bytes]]:
    return [
        (customer_id, raw[i * _ROW_BYTES : (i + 1) * _ROW_BYTES])
        for i, customer_id in enumerate(customer_ids)
    ]


class FeatureEngine:
    """Online feature state for a set of customers plus the label-risk tables."""

    def __init__(self, config: FeatureConfig | None = None, entity_table: bool = False) -> None:
        self.config = config or FeatureConfig()
        self.entities: EntityTable | None = EntityTable() if entity_table else None
        #: the published table a scorer reads (`attach_entities`), when it holds none of its own
        self.entity_mirror: EntityMirror | None = None
        self._scratch: EntityTable | None = None
        self._customers = _SlotMap()
        self._floats = np.zeros((_INITIAL_CAPACITY, L.N_FLOAT_STATE))
        self._ints = np.zeros((_INITIAL_CAPACITY, L.N_INT_STATE), dtype=np.int64)
        self._risk = [_SlotMap() for _ in L.RISK_TABLES]
        self._risk_count = np.zeros((len(L.RISK_TABLES), _INITIAL_CAPACITY))
        self._risk_time = np.zeros((len(L.RISK_TABLES), _INITIAL_CAPACITY))
        self._pending = LabelEvents.empty()
        # Per customer, the (known-at, event) times of the labels applied here, in the order applied (see the module
        # docstring): what a customer's row is rebuilt from when it arrives.
        self._applied: dict[str, list[tuple[float, float]]] = {}

    # --- the online API --------------------------------------------------------------------------

    @property
    def customer_count(self) -> int:
        return len(self._customers)

    def configure(self, config: FeatureConfig) -> None:
        """Compute features as the model was trained (its artifact's `feature_config`). The settings shape
        only the entity table: an engine holding a table of its own takes them only while it is empty."""
        if config == self.config:
            return
        if self.entities is not None and (len(self.entities) or self.entities.queued):
            raise ConfigurationError(
                f"the entity table was built with {self.config.as_dict()}; "
                f"a model trained with {config.as_dict()} needs it rebuilt from history"
            )
        self.config = config

    def transform(self, batch: EncodedBatch) -> np.ndarray:
        """Features (float32, [n, N_FEATURES]) of each transaction in order; then the state includes them."""
        arriving = self._arriving(batch.customer_ids)
        batch.txi[:, L.TI_SLOT] = self._customers.lookup(batch.customer_ids, create=True)
        self._grow_customers()
        if arriving:
            self._relabel(arriving)
        for table, slot_map in enumerate(self._risk):
            batch.txi[:, L.TI_G_MERCHANT + table] = slot_map.lookup(
                batch.risk_keys[:, table].tolist(), create=False
            )
        labels = self._pending
        labf = np.stack([labels.known_at, labels.event_times], axis=1) if len(labels) else _NO_LABELS_F
        entities = self.entities if self.entities is not None else self._scratch_entities()
        if self.entities is not None:
            batch.txi[:, L.TI_E_MERCHANT : L.TI_E_BENEFICIARY + 1] = entities.rows(batch.risk_keys)
        labi = self._label_slots(labels)
        entities.reserve_queue(len(batch) + len(labels))
        out = np.empty((len(batch), N_FEATURES), dtype=np.float32)
        applied, entities.queued, entities.epoch = process_batch(
            batch.txf,
            batch.txi,
            self._floats,
            self._ints,
            labf,
            labi,
            self._risk_count,
            self._risk_time,
            entities.floats,
            entities.ints,
            entities.queue_f,
            entities.queue_i,
            entities.queued,
            entities.epoch,
            self.config.entity_epoch_s,
            self.config.entity_lag_epochs,
            self.config.label_delay_s,
            out,
        )
        if applied:  # most batches apply none: the pending labels stay as they are, not copied again
            self._remember_applied(labels.take(slice(0, applied)))
            self._pending = labels.take(slice(applied, None))
        if self.entity_mirror is not None:
            self.entity_mirror.features(batch.txf[:, L.TF_TIME], batch.risk_keys, self.config, out)
        elif self.entities is None:
            out[:, ENTITY_FIRST:] = np.nan  # no entity table attached: unknown, never a made-up zero
        return out

    def attach_entities(self, mirror: EntityMirror) -> None:
        """Read entity features from the published table (the entity-state component's) from now on.

        The caller keeps the mirror at (or past) the epoch of every transaction it transforms."""
        if self.entities is not None:
            raise ConfigurationError("this engine keeps its own entity table: it reads no published one")
        self.entity_mirror = mirror

    def add_fraud_labels(self, labels: LabelEvents, *, entity_table_has_them: bool = False) -> None:
        """Queue confirmed frauds; each takes effect for transactions after its known-at time.

        `entity_table_has_them`: the attached entity table, restored from its snapshot, has already counted
        these (a restarted engine is given every label again for its customers' rows and the label-risk
        tables, which it rebuilds; the entity table must not count them twice)."""
        if not len(labels):
            return
        if entity_table_has_them:
            labels = replace(labels, to_entities=np.zeros(len(labels), dtype=bool))
        for table, slot_map in enumerate(self._risk):
            slot_map.lookup(labels.risk_keys[:, table].tolist(), create=True)
        self._grow_risk()
        merged = LabelEvents.concat([self._pending, labels])
        self._pending = merged.take(np.argsort(merged.known_at, kind="stable"))

    # --- the offline API ---------------------------------------------------------------------------

    def replay(
        self,
        history: pd.DataFrame,
        chunk_rows: int = 250_000,
        keep: np.ndarray | None = None,
        labels: LabelEvents | None = None,
    ) -> np.ndarray:
        """Features of a whole history in event-time order (the caller sorts it), with its fraud labels.

        Labels come from `is_fraud` with `label_available_at` (or event time + the configured label
        delay when that column is absent), so each label only affects what happened after it was known;
        `labels` replaces them (a replay of part of a history that receives the labels of other parts).
        With `keep` (a row mask), every row still passes through the state but only the kept rows'
        features are returned: ten million rows of features would not fit in memory, a sample does.
        """
        if labels is not None:
            self.add_fraud_labels(labels)
        elif "is_fraud" in history.columns:
            self.add_fraud_labels(labels_from_history(history, self.config))
        # Written into one array as the chunks come: collecting them and concatenating at the end would
        # hold every kept row twice (2 x 1.9 GiB for the ~4M rows training keeps of a 10M-row history).
        out = np.empty(
            (len(history) if keep is None else int(np.count_nonzero(keep)), N_FEATURES), dtype=np.float32
        )
        filled = 0
        for start in range(0, len(history), chunk_rows):
            features = self.transform(encode_frame(history.iloc[start : start + chunk_rows]))
            if keep is not None:
                features = features[keep[start : start + chunk_rows]]
            out[filled : filled + len(features)] = features
            filled += len(features)
        return out

    # --- per-customer rows (the state store shared by the consumer and the gateway) -------------------

    def export_customers(self, customer_ids: Iterable[str]) -> list[tuple[str, bytes]]:
        """Each known customer's state as one compact binary row (header + float row + int row)."""
        known, block = self._state_rows(customer_ids)
        return _split_rows(known, block.tobytes())

    def export_packed(self, customer_ids: Iterable[str]) -> PackedRows:
        """The rows of `export_customers`, compressed a chunk at a time: what a checkpoint holds while it is
        written (a partition's changed customers are tens of MB raw; their rows are mostly zeros)."""
        ids = list(customer_ids)
        packed = PackedRows()
        for start in range(0, len(ids), PackedRows.CHUNK):
            packed.add(*self._state_rows(ids[start : start + PackedRows.CHUNK]))
        return packed

    def _state_rows(self, customer_ids: Iterable[str]) -> tuple[list[str], np.ndarray]:
        """The known customers among these, and their rows (uint8, [n, _ROW_BYTES])."""
        known, slots = [], []
        for customer_id in customer_ids:
            slot = self._customers.slots.get(customer_id)
            if slot is not None:
                known.append(customer_id)
                slots.append(slot)
        block = np.empty((len(slots), _ROW_BYTES), dtype=np.uint8)
        floats_at = len(_ROW_HEADER)
        ints_at = floats_at + 8 * L.N_FLOAT_STATE
        block[:, :floats_at] = np.frombuffer(_ROW_HEADER, dtype=np.uint8)
        block[:, floats_at:ints_at] = self._floats[slots].view(np.uint8)
        block[:, ints_at:] = self._ints[slots].view(np.uint8)
        return known, block

    def import_customers(self, rows: Iterable[tuple[str, bytes]]) -> int:
        """Load rows written by `export_customers` (replacing what this engine holds for those customers).

        The label part of each row is rebuilt from the labels this engine has applied (module docstring).
        """
        rows = list(rows)
        for customer_id, blob in rows:
            if blob[: len(_ROW_HEADER)] != _ROW_HEADER or len(blob) != _ROW_BYTES:
                raise ConfigurationError(
                    f"stored feature state of customer {customer_id!r} is from another feature version "
                    f"(this engine is version {FEATURE_VERSION}): rebuild the state by replaying history"
                )
        slots = self._customers.lookup([customer_id for customer_id, _ in rows], create=True)
        self._grow_customers()
        float_bytes = L.N_FLOAT_STATE * 8
        for slot, (_, blob) in zip(slots, rows, strict=True):
            body = memoryview(blob)[len(_ROW_HEADER) :]
            self._floats[slot] = np.frombuffer(body[:float_bytes], dtype=np.float64)
            self._ints[slot] = np.frombuffer(body[float_bytes:], dtype=np.int64)
        self._relabel([customer_id for customer_id, _ in rows])
        return len(rows)

    def forget(self, customer_ids: Iterable[str]) -> None:
        """Drop customers' state (their partition moved elsewhere, or the gateway's bound evicted them).

        Their rows are zeroed and reused for customers seen later, so memory follows the customers
        held, not every customer ever seen. A forgotten customer seen again starts from no history.
        """
        released = self._customers.release(customer_ids)
        if released:
            rows = np.asarray(released, dtype=np.int64)
            self._floats[rows] = 0.0
            self._ints[rows] = 0

    def customer_state(self, customer_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        """A copy of one customer's raw state rows (for tests and debugging)."""
        slot = self._customers.slots.get(customer_id)
        if slot is None:
            return None
        return self._floats[slot].copy(), self._ints[slot].copy()

    # --- internals -------------------------------------------------------------------------------

    def _scratch_entities(self) -> EntityTable:
        """Without an entity table the kernel still queues events: into this one, emptied every call."""
        if self._scratch is None:
            self._scratch = EntityTable()
        self._scratch.queued = 0
        self._scratch.epoch = -np.inf
        return self._scratch

    def _arriving(self, customer_ids: np.ndarray) -> list[str]:
        """Customers of a batch without a row here yet to whom labels were already applied."""
        applied = self._applied
        if not applied:
            return []
        slots = self._customers.slots
        return [c for c in set(customer_ids.tolist()) if c in applied and c not in slots]

    def _remember_applied(self, labels: LabelEvents) -> None:
        for customer_id, known_at, event_time in zip(
            labels.customer_ids.tolist(), labels.known_at.tolist(), labels.event_times.tolist(), strict=True
        ):
            if customer_id:
                self._applied.setdefault(customer_id, []).append((known_at, event_time))

    def _relabel(self, customer_ids: list[str]) -> None:
        """These customers' rows get, as their label part, exactly the labels applied here so far."""
        applied = self._applied
        owners = [c for c in customer_ids for _ in applied.get(c, ())]
        labf = np.asarray(
            [times for c in customer_ids for times in applied.get(c, ())], dtype=np.float64
        ).reshape(-1, L.N_LF)  # columns LF_KNOWN_AT, LF_EVENT_TIME, as _remember_applied keeps them
        labi = np.full((len(labf), L.N_LI), -1, dtype=np.int64)  # risk slots -1: the tables have them
        labi[:, L.LI_SLOT] = self._customers.lookup(owners, create=False)
        relabel_customers(
            self._customers.lookup(customer_ids, create=False),
            labf,
            labi,
            self._floats,
            self._risk_count,
            self._risk_time,
        )

    def _label_slots(self, labels: LabelEvents) -> np.ndarray:
        if not len(labels):
            return _NO_LABELS_I
        labi = np.full((len(labels), L.N_LI), -1, dtype=np.int64)
        labi[:, L.LI_SLOT] = self._customers.lookup(labels.customer_ids, create=False)
        for table, slot_map in enumerate(self._risk):
            labi[:, L.LI_G_MERCHANT + table] = slot_map.lookup(
                labels.risk_keys[:, table].tolist(), create=False
            )
        if self.entities is not None:
            labi[:, L.LI_E_MERCHANT : L.LI_E_BENEFICIARY + 1] = self.entities.rows(labels.risk_keys)
            labi[~labels.to_entities, L.LI_E_MERCHANT : L.LI_E_BENEFICIARY + 1] = -1
        return labi

    def _grow_customers(self) -> None:
        needed = self._customers.rows
        if needed <= len(self._floats):
            return
        # Grow by a fixed step, not a share: resizing in place (realloc, which moves big blocks with mremap,
        # without copying) costs only the new rows, so growing often is cheap, and a share of 100,000
        # customers held spare would be tens of MB (a quarter: ~90 MB). Allocating a new array and copying
        # would hold the old and the new state at once, doubling the peak memory.
        capacity = -(-needed // _GROWTH_ROWS) * _GROWTH_ROWS
        # The engine owns these arrays; no view of them outlives a call, hence refcheck=False.
        self._floats.resize((capacity, L.N_FLOAT_STATE), refcheck=False)
        self._ints.resize((capacity, L.N_INT_STATE), refcheck=False)

    def _grow_risk(self) -> None:
        needed = max(m.rows for m in self._risk)
        if needed <= self._risk_count.shape[1]:
            return
        capacity = max(needed, 2 * self._risk_count.shape[1])
        for name in ("_risk_count", "_risk_time"):
            old = getattr(self, name)
            new = np.zeros((len(L.RISK_TABLES), capacity))
            new[:, : old.shape[1]] = old
            setattr(self, name, new)


def labels_from_history(history: pd.DataFrame, config: FeatureConfig) -> LabelEvents:
    """Fraud-label events from a labelled history (`is_fraud`, optional `label_available_at`)."""
    frauds = history[history["is_fraud"].astype(bool)]
    if "label_available_at" in frauds.columns:
        known = pd.to_datetime(frauds["label_available_at"], utc=True)
    else:
        known = pd.to_datetime(frauds["event_time"], utc=True) + pd.to_timedelta(
            config.label_delay_s, unit="s"
        )
    known_at = known.to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9

    def keys(name: str) -> np.ndarray:
        if name not in frauds.columns:
            return np.zeros(len(frauds), dtype=np.int64)
        return stable_hash(frauds[name].to_numpy())

    risk_keys = np.stack(
        [
            keys("merchant_id"),
            keys("terminal_id"),
            keys("device_id"),
            keys("ip_address"),
            keys("beneficiary_id"),
        ],
        axis=1,
    ).astype(np.int64)
    customers = (
        frauds["customer_id"].astype(object).to_numpy()
        if "customer_id" in frauds.columns
        else np.full(len(frauds), None, dtype=object)
    )
    event_times = (
        pd.to_datetime(frauds["event_time"], utc=True).to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9
    )
    return LabelEvents(known_at.astype(np.float64), customers, risk_keys, event_times.astype(np.float64))
