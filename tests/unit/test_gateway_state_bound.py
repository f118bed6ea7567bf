"""The gateway holds at most GATEWAY_MAX_CUSTOMERS customers' state, and reuses the rows it lets go.

The state store is replaced by a stub that has nothing stored (the real store is exercised in
tests/integration/test_gateway.py); what is under test is the bound, not PostgreSQL.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import numpy as np

from fraudops.config import Settings
from fraudops.db import async_pool
from fraudops.extras import NO_EXTRA_FIELDS
from fraudops.features.encode import encode_transactions
from fraudops.features.engine import FeatureEngine
from fraudops.routing import RoutingTable
from fraudops.schema import Transaction
from fraudops.scoring import Reason
from fraudops.variants import Decider
from fraudops_gateway.runtime import GatewayRuntime
from fraudops_gateway.supervision import BackgroundHealth


class HalfScorer:
    model_version = "v1"
    threshold = 0.9
    extra_fields = NO_EXTRA_FIELDS

    def score(self, features: np.ndarray) -> np.ndarray:
        return np.full(len(features), 0.5, dtype=np.float32)

    def reasons(self, features: np.ndarray, top_k: int = 3, exact: bool = True) -> list[list[Reason]]:
        return [[] for _ in range(len(features))]


def transaction(customer: int, minute: int) -> Transaction:
    return Transaction(
        transaction_id=f"t-{customer}-{minute}",
        customer_id=f"c{customer}",
        amount=25.0 + customer,
        event_time=datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=minute),
    )


def test_beyond_the_bound_the_least_recent_customers_are_dropped_and_read_again_when_they_return() -> None:
    settings = Settings(gateway_max_customers=100)
    runtime = GatewayRuntime(
        settings, async_pool(settings.db_url), BackgroundHealth()
    )  # the pool is never opened
    runtime.decider = Decider(RoutingTable.single("v1", "unused"), {"stable": HalfScorer()}, "api")
    reads: list[str] = []

    async def nothing_stored(customer_ids: list[str]) -> list:
        reads.extend(customer_ids)
        return []

    runtime._fetch_customers = nothing_stored  # type: ignore[method-assign]

    async def scenario() -> None:
        for minute, customer in enumerate(range(500)):
            await runtime.score([transaction(customer, minute)], explain=False)
        await runtime.score([transaction(499, 600)], explain=False)  # the most recent one is kept
        await runtime.score([transaction(0, 601)], explain=False)  # the first one comes back

    asyncio.run(scenario())

    assert runtime.engine.customer_count <= 100
    assert runtime.engine._customers.rows <= 110, "rows of dropped customers are reused"
    assert reads.count("c0") == 2 and reads.count("c499") == 1
    # c0 came back without history; c499 kept its own two transactions
    alone = FeatureEngine()
    alone.transform(encode_transactions([transaction(0, 601)]))
    np.testing.assert_array_equal(runtime.engine.customer_state("c0")[0], alone.customer_state("c0")[0])
    kept = FeatureEngine()
    kept.transform(encode_transactions([transaction(499, 499), transaction(499, 600)]))
    np.testing.assert_array_equal(runtime.engine.customer_state("c499")[0], kept.customer_state("c499")[0])


def test_forgotten_customers_rows_are_zeroed_and_reused() -> None:
    engine = FeatureEngine()
    engine.transform(encode_transactions([transaction(i, i) for i in range(10)]))
    rows_before = engine._customers.rows

    engine.forget([f"c{i}" for i in range(5)])
    engine.transform(encode_transactions([transaction(100 + i, 20 + i) for i in range(5)]))

    assert engine._customers.rows == rows_before and engine.customer_count == 10
    fresh = FeatureEngine()
    fresh.transform(encode_transactions([transaction(100, 20)]))
    np.testing.assert_array_equal(engine.customer_state("c100")[0], fresh.customer_state("c100")[0])
