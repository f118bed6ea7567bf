"""Durable online feature state in PostgreSQL: per-customer rows, and the labels that feed risk features.

The stream consumer writes customers' state rows (with the partition they belong to) when it
checkpoints; it restores a whole partition on assignment. The gateway reads single customers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import numpy as np
import psycopg

from fraudops.features.encode import stable_hash
from fraudops.features.engine import LabelEvents
from fraudops.features.spec import FEATURE_VERSION


def load_customers(conn: psycopg.Connection, customer_ids: Sequence[str]) -> list[tuple[str, bytes]]:
    rows = conn.execute(
        "SELECT customer_id, state FROM customer_feature_state WHERE customer_id = ANY(%s) AND feature_version = %s",
        (list(customer_ids), FEATURE_VERSION),
    ).fetchall()
    return [(customer_id, bytes(state)) for customer_id, state in rows]


def load_partition(conn: psycopg.Connection, topic: str, partition: int) -> list[tuple[str, bytes]]:
    rows = conn.execute(
        """SELECT customer_id, state FROM customer_feature_state
           WHERE topic = %s AND partition = %s AND feature_version = %s""",
        (topic, partition, FEATURE_VERSION),
    ).fetchall()
    return [(customer_id, bytes(state)) for customer_id, state in rows]


def save_customers(conn: psycopg.Connection, topic: str, rows: Iterable[tuple[str, int, bytes]]) -> int:
    """Upsert (customer_id, partition, state) rows inside the caller's transaction; returns rows written."""
    conn.execute("""CREATE TEMP TABLE IF NOT EXISTS stage_customer_state
                    (customer_id text, partition integer, state bytea) ON COMMIT DELETE ROWS""")
    count = 0
    with conn.cursor().copy("COPY stage_customer_state (customer_id, partition, state) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    conn.execute(
        """INSERT INTO customer_feature_state (customer_id, topic, partition, feature_version, state, updated_at)
           SELECT customer_id, %s, partition, %s, state, now() FROM stage_customer_state
           ON CONFLICT (customer_id) DO UPDATE SET topic = EXCLUDED.topic, partition = EXCLUDED.partition,
               feature_version = EXCLUDED.feature_version, state = EXCLUDED.state, updated_at = now()""",
        (topic, FEATURE_VERSION),
    )
    return count


def fetch_fraud_labels(conn: psycopg.Connection, after: datetime | None) -> tuple[LabelEvents, datetime | None]:
    """Fraud labels received after `after`, joined to their transactions' keys; and the new cursor."""
    rows = conn.execute(
        """SELECT extract(epoch FROM f.label_known_at), t.customer_id, t.merchant_id, t.terminal_id, t.device_id,
                  t.ip_address, t.beneficiary_id, f.received_at
           FROM feedback_labels f JOIN transactions t USING (transaction_id)
           WHERE f.is_fraud AND (%(after)s::timestamptz IS NULL OR f.received_at > %(after)s)
           ORDER BY f.received_at""",
        {"after": after},
    ).fetchall()
    if not rows:
        return LabelEvents.empty(), after
    columns = list(zip(*rows, strict=True))
    keys = np.stack([stable_hash(np.asarray(columns[i], dtype=object)) for i in range(2, 7)], axis=1)
    events = LabelEvents(np.asarray(columns[0], dtype=np.float64), np.asarray(columns[1], dtype=object), keys)
    return events, rows[-1][7]
