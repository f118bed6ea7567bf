"""Durable online feature state in PostgreSQL: per-customer rows, and the labels that feed risk features.

The stream consumer writes customers' state rows (with the partition they belong to) when it
checkpoints; it restores a whole partition on assignment. The gateway reads single customers.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import islice

import numpy as np
import psycopg

from fraudops.features.encode import stable_hash
from fraudops.features.engine import LabelEvents
from fraudops.features.spec import FEATURE_VERSION

#: Customers' stored states and when they were stored (parameters: customer ids, FEATURE_VERSION),
#: as the gateway reads them.
LOAD_CUSTOMERS_SQL = """SELECT customer_id, state, updated_at FROM customer_feature_state
                        WHERE customer_id = ANY(%s) AND feature_version = %s"""


def load_partition(conn: psycopg.Connection, topic: str, partition: int) -> list[tuple[str, bytes]]:
    rows = conn.execute(
        """SELECT customer_id, state FROM customer_feature_state
           WHERE topic = %s AND partition = %s AND feature_version = %s""",
        (topic, partition, FEATURE_VERSION),
    ).fetchall()
    return [(customer_id, bytes(state)) for customer_id, state in rows]


#: PostgreSQL's binary COPY framing: signature, flags, header extension length; and the trailer.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_COPY_CHUNK = 2 * 2**20


#: the staging table's state compression for this transaction: that of customer_feature_state.state
STAGE_COMPRESSION_SQL = """SELECT set_config('default_toast_compression',
                                  CASE attcompression WHEN 'l' THEN 'lz4' ELSE 'pglz' END, true)
                           FROM pg_attribute
                           WHERE attrelid = 'customer_feature_state'::regclass AND attname = 'state'"""


def save_customers(
    conn: psycopg.Connection, topic: str, rows: Iterable[tuple[str, int, bytes]], rest: float = 0.0
) -> int:
    """Upsert (customer_id, partition, state) rows inside the caller's transaction; returns rows written.

    The rows travel as binary COPY framed here (three fields a row): a state row is ~3.8 KB of bytes,
    which text COPY would escape to twice its size and a per-row `write_row` would frame in Python
    field by field — 3x slower for a partition's 20,000 customers.

    With `rest`, they go SAVE_SLICE_ROWS at a time, and after each slice the connection rests `rest`
    times as long as the slice took: a periodic checkpoint then spreads PostgreSQL's work (compression,
    heap, WAL) over seconds instead of taking a core from the stream beside it (the entity stream's late
    batches clustered in the three seconds a round of six partitions took). Still the one transaction.
    """
    conn.execute("""CREATE TEMP TABLE IF NOT EXISTS stage_customer_state
                    (customer_id text, partition integer, state bytea) ON COMMIT DELETE ROWS""")
    # staged rows compressed as the table's column compresses (migration 0006: lz4 where the server has
    # it): PostgreSQL moves a compressed value into the table as it is, without compressing it again
    conn.execute(STAGE_COMPRESSION_SQL)
    rows = iter(rows)
    count = 0
    while True:
        started = time.perf_counter()
        staged = _stage(conn, islice(rows, SAVE_SLICE_ROWS) if rest else rows)
        if not staged:
            return count
        conn.execute(UPSERT_STAGED_SQL, (topic, FEATURE_VERSION))
        count += staged
        if not rest:
            return count
        conn.execute("TRUNCATE stage_customer_state")
        time.sleep(rest * (time.perf_counter() - started))


#: rows a resting checkpoint writes per slice (~2 MB of state)
SAVE_SLICE_ROWS = 512
UPSERT_STAGED_SQL = """INSERT INTO customer_feature_state (customer_id, topic, partition, feature_version, state, updated_at)
   SELECT customer_id, %s, partition, %s, state, now() FROM stage_customer_state
   ON CONFLICT (customer_id) DO UPDATE SET topic = EXCLUDED.topic, partition = EXCLUDED.partition,
       feature_version = EXCLUDED.feature_version, state = EXCLUDED.state, updated_at = now()"""


def _stage(conn: psycopg.Connection, rows: Iterable[tuple[str, int, bytes]]) -> int:
    """COPY the rows into the staging table; returns how many."""
    count = 0
    with conn.cursor().copy(
        "COPY stage_customer_state (customer_id, partition, state) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        pending, size = [_COPY_HEADER], len(_COPY_HEADER)
        for customer_id, partition, state in rows:
            key = customer_id.encode()
            pending.append(
                struct.pack(">hi", 3, len(key)) + key + struct.pack(">iii", 4, partition, len(state))
            )
            pending.append(state)
            size += len(state) + len(key) + 18
            count += 1
            if size >= _COPY_CHUNK:
                copy.write(b"".join(pending))
                pending, size = [], 0
        pending.append(_COPY_TRAILER)
        copy.write(b"".join(pending))
    return count


#: Fraud labels received after a cursor (`after`: a `received_at`, or None for all), with their
#: transactions' keys and times (the entity table counts a fraud on the day it happened, as training's
#: replay does), in the order received.
FRAUD_LABELS_SQL = """SELECT extract(epoch FROM f.label_known_at), t.customer_id, t.merchant_id, t.terminal_id,
                             t.device_id, t.ip_address, t.beneficiary_id, extract(epoch FROM t.event_time),
                             f.received_at
                      FROM feedback_labels f JOIN transactions t USING (transaction_id)
                      WHERE f.is_fraud AND (%(after)s::timestamptz IS NULL OR f.received_at > %(after)s)
                      ORDER BY f.received_at"""


def fetch_fraud_labels(
    conn: psycopg.Connection, after: datetime | None
) -> tuple[LabelEvents, datetime | None]:
    """Fraud labels received after `after`, joined to their transactions' keys; and the new cursor."""
    return fraud_label_events(conn.execute(FRAUD_LABELS_SQL, {"after": after}).fetchall(), after)


def fraud_label_events(rows: Sequence[tuple], after: datetime | None) -> tuple[LabelEvents, datetime | None]:
    """The rows of FRAUD_LABELS_SQL as label events, and the cursor for the next read."""
    if not rows:
        return LabelEvents.empty(), after
    columns = list(zip(*rows, strict=True))
    keys = np.stack([stable_hash(np.asarray(columns[i], dtype=object)) for i in range(2, 7)], axis=1)
    events = LabelEvents(
        np.asarray(columns[0], dtype=np.float64),
        np.asarray(columns[1], dtype=object),
        keys,
        np.asarray(columns[7], dtype=np.float64),
    )
    return events, rows[-1][8]
