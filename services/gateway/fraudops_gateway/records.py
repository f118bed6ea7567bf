"""What the API reads and writes in PostgreSQL itself: stored decisions and feedback labels, on the pool.

A caller waits at most REQUEST_DB_WAIT_S for a pooled connection; a database that is away is a
`RetryableError` (503 with Retry-After) whose detail goes to the log, not to the caller.
"""

from __future__ import annotations

import logging
from datetime import datetime

import psycopg
from psycopg_pool import AsyncConnectionPool

from fraudops.errors import NotFoundError, RetryableError
from fraudops.metrics import FEEDBACK
from fraudops_gateway.schemas import FeedbackRequest, StoredDecision

log = logging.getLogger(__name__)
REQUEST_DB_WAIT_S = 3.0

_DECISION_SQL = """SELECT d.variant, d.model_name, d.model_version, d.shadow, d.score, d.threshold, d.is_fraud,
                          d.reasons, d.latency_ms, d.source, d.decided_at, f.is_fraud
                   FROM decisions d LEFT JOIN feedback_labels f USING (transaction_id)
                   WHERE d.transaction_id = %s"""
_STORE_LABEL_SQL = """INSERT INTO feedback_labels (transaction_id, is_fraud, label_known_at, source)
                      VALUES (%s, %s, %s, %s)
                      ON CONFLICT (transaction_id) DO UPDATE SET is_fraud = EXCLUDED.is_fraud,
                          label_known_at = EXCLUDED.label_known_at, source = EXCLUDED.source, received_at = now()
                      WHERE feedback_labels.is_fraud IS DISTINCT FROM EXCLUDED.is_fraud"""


def _unavailable(exc: psycopg.OperationalError) -> RetryableError:
    log.warning("database unavailable for a request", extra={"error": str(exc)})
    return RetryableError("the database is unavailable")


async def load_decision(pool: AsyncConnectionPool, transaction_id: str) -> StoredDecision:
    """The deciding decision of a transaction, its shadow scores and its confirmed label."""
    try:
        async with pool.connection(timeout=REQUEST_DB_WAIT_S) as conn:
            rows = await (await conn.execute(_DECISION_SQL, (transaction_id,))).fetchall()
    except psycopg.OperationalError as exc:
        raise _unavailable(exc) from exc
    deciding = [row for row in rows if not row[3]]
    if not deciding:
        raise NotFoundError(f"no decision stored for transaction {transaction_id!r}")
    (
        variant,
        model_name,
        version,
        _,
        score,
        threshold,
        is_fraud,
        reasons,
        latency,
        source,
        decided_at,
        label,
    ) = deciding[0]
    return StoredDecision(
        transaction_id=transaction_id,
        fraud_probability=score,
        is_fraud=is_fraud,
        threshold=threshold,
        model_name=model_name,
        model_version=version,
        variant=variant,
        reasons=reasons,
        latency_ms=latency,
        source=source,
        decided_at=decided_at,
        shadow_scores={row[0]: row[4] for row in rows if row[3]},
        label=label,
    )


async def store_feedback(pool: AsyncConnectionPool, payload: FeedbackRequest, known_at: datetime) -> bool:
    """Store a confirmed label (idempotent: False when the same label is already stored)."""
    try:
        async with pool.connection(timeout=REQUEST_DB_WAIT_S) as conn, conn.transaction():
            exists = await (
                await conn.execute(
                    "SELECT 1 FROM transactions WHERE transaction_id = %s", (payload.transaction_id,)
                )
            ).fetchone()
            if exists is None:
                raise NotFoundError(
                    f"transaction {payload.transaction_id!r} is unknown; feedback needs a decided transaction"
                )
            decision = await (
                await conn.execute(
                    "SELECT model_version, is_fraud FROM decisions WHERE transaction_id = %s AND NOT shadow",
                    (payload.transaction_id,),
                )
            ).fetchone()
            cursor = await conn.execute(
                _STORE_LABEL_SQL, (payload.transaction_id, payload.is_fraud, known_at, payload.source)
            )
            stored = cursor.rowcount == 1
    except psycopg.OperationalError as exc:
        raise _unavailable(exc) from exc
    if stored and decision is not None:  # precision on labelled feedback, for the rollout analysis
        FEEDBACK.labels(
            decision[0],
            "fraud" if decision[1] else "legitimate",
            "fraud" if payload.is_fraud else "legitimate",
        ).inc()
    return stored
