"""The published entity table in PostgreSQL: the entity-state component writes it, scorers mirror it.

Per topic, three tables (migration 0004):
- `entity_table_deltas`: for every epoch the component closes, the rows that changed (`EntityDelta`);
- `entity_table_snapshots`: the whole table now and then (a mirror's or a restart's starting point;
  epoch 0 is the empty table, so every epoch has a snapshot at or before it until pruned); snapshots
  and deltas are kept for a retention window behind the newest epoch (`save_snapshot`);
- `entity_component_state`: the epoch published, the component's next offset per partition, its
  label cursor and the events it holds for the open epoch — written in the same transaction as the
  deltas, so a restarted component resumes from exactly the state its offsets reflect and counts no
  transaction or label twice.

One component writes a topic's table: it holds a PostgreSQL advisory lock on the topic for as long as
its connection lives (`take_table`), and a second one waits for it instead of publishing over it.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import psycopg

from fraudops.errors import ConfigurationError
from fraudops.features import layout as L
from fraudops.features.entities import EntityTable
from fraudops.features.entity_mirror import EntityDelta, EntityMirror, MirrorTable
from fraudops.features.spec import DAY, FEATURE_VERSION, FeatureConfig

#: deltas of a topic after one epoch up to another, in order (parameters: topic, after, upto)
DELTAS_SQL = """SELECT epoch, body FROM entity_table_deltas
                WHERE topic = %s AND epoch > %s AND epoch <= %s ORDER BY epoch"""
#: the epoch the component has published (parameters: topic, FEATURE_VERSION)
PUBLISHED_EPOCH_SQL = """SELECT epoch FROM entity_component_state WHERE topic = %s AND feature_version = %s"""
#: the newest snapshot at or before an epoch (parameters: topic, epoch)
SNAPSHOT_SQL = """SELECT epoch, body FROM entity_table_snapshots WHERE topic = %s AND epoch <= %s
                  ORDER BY epoch DESC LIMIT 1"""


#: the feature configuration the component keeps the table with (parameters: topic)
PUBLISHED_CONFIG_SQL = "SELECT feature_config FROM entity_component_state WHERE topic = %s"
#: first key of the writer's advisory lock (the second is the topic's hash): "fo" in ASCII, so that the
#: lock says whose it is among an application's other advisory locks (pg_locks.classid)
WRITER_LOCK_CLASS = 0x666F


def take_table(conn: psycopg.Connection, topic: str) -> bool:
    """Become the one writer of `topic`'s entity table for as long as `conn` lives (a session advisory
    lock); False while another connection holds it. Two components publishing the same topic would each
    write their own epochs and positions over the other's."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (WRITER_LOCK_CLASS, topic)).fetchone()
    return bool(row and row[0])


@dataclass(frozen=True)
class ComponentPosition:
    """Where the component stands: the epoch published, next offsets, label cursor, the open epoch's events,
    and the feature configuration (label delay, epoch length) the table is kept with."""

    epoch: int
    offsets: dict[int, int]
    labels_cursor: datetime | None
    queue_f: np.ndarray
    queue_i: np.ndarray
    config: FeatureConfig
    #: the salted keys of the queued events' entities (`EntityTable.queued_entity_keys`): a restored table
    #: numbers the rows created after its snapshot in its own order, so the queue is restored by key
    queue_keys: np.ndarray | None = None


def _to_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def _from_bytes(body: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(body)) as data:
        return {name: data[name] for name in data.files}


def table_from_snapshot(body: bytes) -> EntityTable:
    return EntityTable.from_arrays(_from_bytes(body))


def publish(
    conn: psycopg.Connection, topic: str, deltas: list[EntityDelta], position: ComponentPosition
) -> None:
    """Write the closed epochs' deltas and the component's new position in one transaction."""
    with conn.transaction():
        # one statement for all of them: a sparse history closes thousands of epochs of a few rows each
        # (a statement per delta cost PostgreSQL ~250 µs each, ten times the row)
        if deltas:
            conn.execute(
                """INSERT INTO entity_table_deltas (topic, epoch, body)
                   SELECT %s, epoch, body FROM unnest(%s::bigint[], %b::bytea[]) AS delta (epoch, body)
                   ON CONFLICT (topic, epoch) DO UPDATE SET body = EXCLUDED.body""",
                (topic, [delta.epoch for delta in deltas], [delta.to_bytes() for delta in deltas]),
            )
        conn.execute(
            """INSERT INTO entity_component_state
                   (topic, feature_version, epoch, offsets, labels_cursor, queue, feature_config)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (topic) DO UPDATE SET feature_version = EXCLUDED.feature_version,
                   epoch = EXCLUDED.epoch, offsets = EXCLUDED.offsets, labels_cursor = EXCLUDED.labels_cursor,
                   queue = EXCLUDED.queue, feature_config = EXCLUDED.feature_config, updated_at = now()""",
            (
                topic,
                FEATURE_VERSION,
                position.epoch,
                json.dumps({str(p): o for p, o in position.offsets.items()}),
                position.labels_cursor,
                _to_bytes(
                    {"queue_f": position.queue_f, "queue_i": position.queue_i}
                    | ({} if position.queue_keys is None else {"queue_keys": position.queue_keys})
                ),
                json.dumps(position.config.as_dict()),
            ),
        )


def save_snapshot(
    conn: psycopg.Connection, topic: str, epoch: int, table: EntityTable, retain_epochs: int = 1440
) -> None:
    """Store the whole table as of `epoch`. Everything after `epoch - retain_epochs` stays readable: the
    newest snapshot at or before that epoch (the retention's base), every newer one, and the deltas after
    the base; older snapshots and deltas are dropped."""
    arrays = table.arrays()
    arrays["entity_queue_f"] = np.empty((0, L.N_QF))  # the open epoch's events live in the position
    arrays["entity_queue_i"] = np.empty((0, L.N_QI), dtype=np.int64)
    arrays["entity_epoch"] = np.asarray([float(epoch)])
    with conn.transaction():
        conn.execute(
            """INSERT INTO entity_table_snapshots (topic, epoch, body) VALUES (%s, %s, %s)
               ON CONFLICT (topic, epoch) DO UPDATE SET body = EXCLUDED.body""",
            (topic, epoch, _to_bytes(arrays)),
        )
        base = conn.execute(
            "SELECT max(epoch) FROM entity_table_snapshots WHERE topic = %s AND epoch <= %s",
            (topic, epoch - retain_epochs),
        ).fetchone()
        if base is not None and base[0] is not None:
            conn.execute(
                "DELETE FROM entity_table_snapshots WHERE topic = %s AND epoch < %s", (topic, base[0])
            )
            conn.execute("DELETE FROM entity_table_deltas WHERE topic = %s AND epoch <= %s", (topic, base[0]))


def ensure_started(conn: psycopg.Connection, topic: str) -> None:
    """The empty table as the snapshot of epoch 0: the base of every mirror until newer ones exist."""
    with conn.transaction():
        exists = conn.execute(
            "SELECT 1 FROM entity_table_snapshots WHERE topic = %s LIMIT 1", (topic,)
        ).fetchone()
        if exists is None:
            save_snapshot(conn, topic, 0, EntityTable())


def load_component(conn: psycopg.Connection, topic: str) -> tuple[EntityTable, ComponentPosition] | None:
    """The component's table (newest snapshot + the deltas after it) and position; None before its first epoch."""
    row = conn.execute(
        """SELECT epoch, offsets, labels_cursor, queue, feature_config FROM entity_component_state
           WHERE topic = %s AND feature_version = %s""",
        (topic, FEATURE_VERSION),
    ).fetchone()
    if row is None:
        return None
    epoch, offsets, labels_cursor, queue, config = row
    mirror = load_mirror(conn, topic, epoch, keep_epochs=0)
    assert mirror is not None, "a published epoch always has a snapshot at or before it"
    table = mirror.table.entity_table()
    del mirror
    queued = _from_bytes(bytes(queue))
    # positions written before the keys were kept hold row numbers only (right if no row was created
    # after the snapshot they are restored from)
    table.requeue(queued["queue_f"], queued["queue_i"], queued.get("queue_keys"))
    table.epoch = float(epoch)
    position = ComponentPosition(
        int(epoch),
        {int(p): int(o) for p, o in offsets.items()},
        labels_cursor,
        table.queue_f[: table.queued].copy(),
        table.queue_i[: table.queued].copy(),
        FeatureConfig.from_dict(config),
        table.queued_entity_keys(),
    )
    return table, position


def check_published_config(conn: psycopg.Connection, topic: str, config: FeatureConfig) -> None:
    """Refuse a published table kept with other settings than the model's (its reads would not be the
    features the model was trained on)."""
    row = conn.execute(PUBLISHED_CONFIG_SQL, (topic,)).fetchone()
    if row is not None:
        check_config(FeatureConfig.from_dict(row[0]), config)


def check_config(published: FeatureConfig, config: FeatureConfig) -> None:
    if not published.same_table(config):
        raise ConfigurationError(
            f"the entity-state component keeps the entity table with {published.as_dict()}, the model was "
            f"trained with {config.as_dict()}: start the component with --label-delay-days "
            f"{config.label_delay_s / DAY:g} --epoch-seconds {config.entity_epoch_s:g} (and a fresh table)"
        )


def published_epoch(conn: psycopg.Connection, topic: str) -> int | None:
    row = conn.execute(PUBLISHED_EPOCH_SQL, (topic, FEATURE_VERSION)).fetchone()
    return None if row is None else int(row[0])


def load_mirror(
    conn: psycopg.Connection, topic: str, epoch: int | None = None, keep_epochs: int | None = 120
) -> EntityMirror | None:
    """A mirror standing at `epoch` (default: the newest published), from the newest snapshot at or before it
    (pruned past it: the oldest snapshot there is, and reads before that one are counted as stale)."""
    if epoch is None:
        epoch = published_epoch(conn, topic)
        if epoch is None:
            return None
    # binary results: a bytea in text is hex, twice the body's size on top of it while it is decoded
    row = conn.execute(SNAPSHOT_SQL, (topic, epoch), binary=True).fetchone()
    if row is None:  # pruned past it: the oldest there is (reads before it are counted as stale)
        row = conn.execute(
            "SELECT epoch, body FROM entity_table_snapshots WHERE topic = %s ORDER BY epoch LIMIT 1",
            (topic,),
            binary=True,
        ).fetchone()
        if row is None:
            return None
    mirror = mirror_from_snapshot(row, keep_epochs)
    advance_mirror(conn, topic, mirror, epoch)
    return mirror


def advance_mirror(conn: psycopg.Connection, topic: str, mirror: EntityMirror, epoch: int) -> None:
    """Apply the published deltas up to `epoch` (which the component must have published)."""
    rows = conn.execute(DELTAS_SQL, (topic, mirror.newest_epoch, epoch), binary=True).fetchall()
    apply_deltas(mirror, rows, epoch)


def read_deltas(conn: psycopg.Connection, topic: str, after: int, upto: int) -> list[EntityDelta]:
    """The published deltas after epoch `after` up to `upto`, in order."""
    rows = conn.execute(DELTAS_SQL, (topic, after, upto), binary=True).fetchall()
    return [EntityDelta.from_bytes(int(epoch), bytes(body)) for epoch, body in rows]


def deltas_kept_after(conn: psycopg.Connection, topic: str, epoch: int) -> bool:
    """Whether every published delta after `epoch` is still there (pruning drops the deltas up to the
    oldest snapshot kept; a mirror standing before it must be rebuilt from a snapshot)."""
    row = conn.execute("SELECT min(epoch) FROM entity_table_snapshots WHERE topic = %s", (topic,)).fetchone()
    return row is None or row[0] is None or int(row[0]) <= epoch


def mirror_from_snapshot(row: tuple[int, bytes], keep_epochs: int | None = 120) -> EntityMirror:
    """A mirror from a row of SNAPSHOT_SQL (epoch, body)."""
    base_epoch, body = row
    return EntityMirror(MirrorTable.from_arrays(_from_bytes(bytes(body))), int(base_epoch), keep_epochs)


def apply_deltas(mirror: EntityMirror, rows: list[tuple[int, bytes]], epoch: int) -> None:
    """Apply rows of DELTAS_SQL (epoch, body) up to `epoch` (in one step); the mirror then stands at `epoch`."""
    mirror.apply([EntityDelta.from_bytes(int(delta_epoch), bytes(body)) for delta_epoch, body in rows])
    mirror.advance(epoch)
