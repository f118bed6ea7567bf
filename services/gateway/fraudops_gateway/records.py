"""What the API reads and writes in PostgreSQL itself: stored decisions and feedback labels, on the pool,
and the precision and recall that labelled feedback gives (published every few minutes).

A caller waits at most REQUEST_DB_WAIT_S for a pooled connection; a database that is away is a
`RetryableError` (503 with Retry-After) whose detail goes to the log, not to the caller.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg_pool import AsyncConnectionPool

from fraudops.decision import DECISION_COLUMNS, Decision, decision_from_row
from fraudops.errors import NotFoundError, RetryableError
from fraudops.feedback_quality import COHORT_SQL, CohortQuality, cohort_parameters, cohort_qualities
from fraudops.metrics import FEEDBACK
from fraudops.monitoring import observe_feedback_delay, publish_cohort_qualities
from fraudops_gateway.schemas import FeedbackRequest, StoredDecision

log = logging.getLogger(__name__)
REQUEST_DB_WAIT_S = 3.0

_DECISION_SQL = f"""SELECT {", ".join(f"d.{name}" for name in DECISION_COLUMNS)}, f.is_fraud
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
    decisions = [decision_from_row(row[:-1]) for row in rows]
    deciding = [
        (decision, row[-1]) for decision, row in zip(decisions, rows, strict=True) if not decision.shadow
    ]
    if not deciding:
        raise NotFoundError(f"no decision stored for transaction {transaction_id!r}")
    decision, label = deciding[0]
    return as_stored(decision, {d.variant: d.score for d in decisions if d.shadow}, label)


def as_stored(decision: Decision, shadow_scores: dict[str, float], label: bool | None) -> StoredDecision:
    """A decision as `GET /transactions/{id}` answers it (the probability under its API name)."""
    fields = {
        name: getattr(decision, name) for name in StoredDecision.model_fields if hasattr(decision, name)
    }
    return StoredDecision(
        **fields, fraud_probability=decision.score, shadow_scores=shadow_scores, label=label
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
                    "SELECT model_version, is_fraud, decided_at FROM decisions WHERE transaction_id = %s AND NOT shadow",
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
        observe_feedback_delay(decision[0], decision[1], (known_at - decision[2]).total_seconds())
    return stored


async def publish_feedback_quality(
    pool: AsyncConnectionPool, label_delay: timedelta, cohort: timedelta, now: datetime | None = None
) -> list[CohortQuality]:
    """Count the matured cohort's precision and recall per model version and variant and publish them as gauges."""
    parameters = cohort_parameters(now or datetime.now(UTC), label_delay, cohort)
    async with pool.connection(timeout=REQUEST_DB_WAIT_S) as conn:
        rows = await (await conn.execute(COHORT_SQL, parameters)).fetchall()
    qualities = cohort_qualities(rows)
    publish_cohort_qualities(qualities)
    return qualities
