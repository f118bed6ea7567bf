"""Precision and recall on labelled feedback over the matured cohort, counted by the gateway's query in
real PostgreSQL and published as gauges: decisions younger than the label delay, older than the cohort,
shadow decisions and labels not yet known leave the numbers alone."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from prometheus_client import REGISTRY
from psycopg_pool import AsyncConnectionPool

from fraudops.feedback_quality import CohortQuality
from fraudops_gateway.records import publish_feedback_quality
from fraudops_infra.stack import LocalStack
from tests.integration.test_gateway_support import migrated_database

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LABEL_DELAY, COHORT = timedelta(days=7), timedelta(days=1)
IN_COHORT = NOW - LABEL_DELAY - timedelta(hours=12)

# (transaction, model version, variant, decided at, flagged, label: None or (is fraud, known at));
# variant "challenger" is a shadow decision.
DECISIONS = [
    ("caught", "v1", "stable", IN_COHORT, True, (True, NOW - timedelta(days=2))),
    ("false-alarm", "v1", "stable", IN_COHORT, True, (False, NOW - timedelta(days=3))),
    ("flag-never-labelled", "v1", "stable", IN_COHORT, True, None),  # matured without a label: legitimate
    ("missed", "v1", "stable", IN_COHORT, False, (True, NOW - timedelta(days=1))),
    ("quiet", "v1", "stable", IN_COHORT, False, None),
    # The canary's side of the same cohort, counted apart from the stable side.
    ("canary-caught", "v2", "canary", IN_COHORT, True, (True, NOW - timedelta(days=2))),
    ("canary-missed", "v2", "canary", IN_COHORT, False, (True, NOW - timedelta(days=2))),
    # Left out: shadow, too recent for its labels, older than the cohort, a label known only later.
    ("shadow", "v1-shadow", "challenger", IN_COHORT, True, (True, NOW - timedelta(days=2))),
    ("too-recent", "v1", "stable", NOW - timedelta(hours=2), True, (False, NOW - timedelta(hours=1))),
    (
        "too-old",
        "v1",
        "stable",
        NOW - LABEL_DELAY - timedelta(days=3),
        False,
        (True, NOW - timedelta(days=5)),
    ),
    ("label-from-the-future", "v1", "stable", IN_COHORT, False, (True, NOW + timedelta(hours=1))),
    ("other-version", "v3", "stable", IN_COHORT, False, None),
]


@pytest.fixture()
def database(local_stack: LocalStack) -> Iterator[str]:
    with migrated_database(local_stack, "cohort") as url, psycopg.connect(url) as conn:
        for transaction, version, variant, decided_at, flagged, label in DECISIONS:
            conn.execute(
                "INSERT INTO decisions (transaction_id, variant, model_name, model_version, shadow, score,"
                " threshold, is_fraud, decided_at) VALUES (%s, %s, 'card-fraud', %s, %s, %s, 0.5, %s, %s)",
                (
                    transaction,
                    variant,
                    version,
                    variant == "challenger",
                    0.9 if flagged else 0.1,
                    flagged,
                    decided_at,
                ),
            )
            if label is not None:
                conn.execute(
                    "INSERT INTO feedback_labels (transaction_id, is_fraud, label_known_at) VALUES (%s, %s, %s)",
                    (transaction, *label),
                )
        conn.commit()
        yield url


def published(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_precision_and_recall_count_only_the_matured_cohort(database: str) -> None:
    async def count() -> list[CohortQuality]:
        async with AsyncConnectionPool(database, min_size=1, max_size=1, open=False) as pool:
            return await publish_feedback_quality(pool, LABEL_DELAY, COHORT, now=NOW)

    qualities = {(q.model_version, q.variant): q for q in asyncio.run(count())}

    assert set(qualities) == {("v1", "stable"), ("v2", "canary"), ("v3", "stable")}
    v1 = qualities["v1", "stable"]
    assert (v1.decisions, v1.flagged, v1.fraud, v1.caught, v1.labelled) == (6, 3, 2, 1, 3)
    assert v1.precision == pytest.approx(1 / 3) and v1.recall == pytest.approx(1 / 2)
    stable = {"model_version": "v1", "variant": "stable"}
    assert published("fraudops_feedback_cohort_precision", **stable) == pytest.approx(1 / 3)
    assert published("fraudops_feedback_cohort_recall", **stable) == pytest.approx(1 / 2)
    assert published("fraudops_feedback_cohort_decisions", **stable, labelled="true") == 3
    assert published("fraudops_feedback_cohort_decisions", **stable, labelled="false") == 3
    # The canary side by side: every flag confirmed, one of two frauds found.
    canary = {"model_version": "v2", "variant": "canary"}
    assert published("fraudops_feedback_cohort_precision", **canary) == pytest.approx(1.0)
    assert published("fraudops_feedback_cohort_recall", **canary) == pytest.approx(1 / 2)
    # Nothing flagged and nothing labelled: no number to give, rather than a perfect or a zero one.
    assert qualities["v3", "stable"].precision is None and qualities["v3", "stable"].recall is None
    precision_v3 = published("fraudops_feedback_cohort_precision", model_version="v3", variant="stable")
    assert precision_v3 is not None and math.isnan(precision_v3)
