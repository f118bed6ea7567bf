"""The Decider's failure policy: a failing canary never fails a decision; a failing stable does.

The scorers here are test doubles (a scorer that returns fixed scores, one that raises the error a
KServe endpoint raises when it is down) because the behaviour under test is the Decider's routing
and fallback, not the model; the real scorers are exercised in the integration tests.
"""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import REGISTRY

from fraudops.decision import decisions_table
from fraudops.errors import RetryableError
from fraudops.extras import NO_EXTRA_FIELDS
from fraudops.routing import RoutingTable, Variant, VariantMode
from fraudops.scoring import Reason
from fraudops.variants import Decider


class FixedScorer:
    extra_fields = NO_EXTRA_FIELDS

    def __init__(self, version: str, score: float) -> None:
        self.model_version = version
        self.threshold = 0.5
        self.value = score

    def score(self, features: np.ndarray) -> np.ndarray:
        return np.full(len(features), self.value, dtype=np.float32)

    def reasons(self, features: np.ndarray, top_k: int = 3, exact: bool = True) -> list[list[Reason]]:
        return [[Reason("amount", 1.0, 0.5)] for _ in range(len(features))]


class DownScorer(FixedScorer):
    def score(self, features: np.ndarray) -> np.ndarray:
        raise RetryableError("model server http://canary unreachable")


def table(canary_mode: VariantMode = VariantMode.SERVE) -> RoutingTable:
    canary_weight = 0 if canary_mode == VariantMode.SHADOW else 50
    return RoutingTable(
        variants=[
            Variant(name="stable", model_version="v1", weight=100 - canary_weight, model_uri="x"),
            Variant(
                name="canary",
                model_version="v2",
                weight=canary_weight,
                mode=canary_mode,
                endpoint="http://canary",
            ),
        ]
    )


def errors(variant: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "fraudops_scoring_errors_total", {"source": "test", "variant": variant, "model_version": "v2"}
        )
        or 0.0
    )


def decide(decider: Decider, n: int = 400):  # type: ignore[no-untyped-def]
    ids = [f"tx-{i}" for i in range(n)]
    return decider.decide(np.zeros((n, 3), dtype=np.float32), ids, [f"c-{i}" for i in range(n)])


def test_when_the_canary_is_down_the_stable_decides_its_share_and_the_error_is_counted() -> None:
    before = errors("canary")
    decided = decide(
        Decider(table(), {"stable": FixedScorer("v1", 0.9), "canary": DownScorer("v2", 0.1)}, "test")
    )
    assert len(decided.deciding) == 400
    assert {d.variant for d in decided.deciding} == {"stable"}
    assert all(d.is_fraud and d.reasons for d in decided.deciding)
    assert errors("canary") == before + 1


def test_when_the_stable_is_down_the_batch_fails_so_it_is_retried() -> None:
    decider = Decider(table(), {"stable": DownScorer("v1", 0.1), "canary": FixedScorer("v2", 0.1)}, "test")
    with pytest.raises(RetryableError):
        decide(decider)


def test_a_failing_shadow_costs_no_decision() -> None:
    before = errors("canary")
    decided = decide(
        Decider(
            table(VariantMode.SHADOW),
            {"stable": FixedScorer("v1", 0.1), "canary": DownScorer("v2", 0.1)},
            "test",
        )
    )
    assert len(decided.deciding) == 400 and not decided.shadow
    assert errors("canary") == before + 1


def test_shadow_scores_are_recorded_but_never_decide() -> None:
    decided = decide(
        Decider(
            table(VariantMode.SHADOW),
            {"stable": FixedScorer("v1", 0.1), "canary": FixedScorer("v2", 0.9)},
            "test",
        )
    )
    assert {d.variant for d in decided.deciding} == {"stable"}
    assert len(decided.shadow) == 400 and all(
        d.shadow and d.score == pytest.approx(0.9) for d in decided.shadow
    )
    assert not any(d.is_fraud for d in decided.deciding)


def test_the_columnar_decisions_hold_what_the_decision_objects_hold() -> None:
    class Alternating(FixedScorer):
        def score(self, features: np.ndarray) -> np.ndarray:
            return np.where(np.arange(len(features)) % 3 == 0, 0.9, 0.1).astype(np.float32)

    decider = Decider(table(), {"stable": Alternating("v1", 0), "canary": FixedScorer("v2", 0.2)}, "test")
    decided = decide(decider, 300)

    deciding = decided.deciding
    assert [d.transaction_id for d in deciding] == [f"tx-{i}" for i in range(300)], "the batch's order"
    assert {d.variant for d in deciding} == {"stable", "canary"}
    columns = decided.table().to_pylist()
    objects = decisions_table(decided.all).to_pylist()
    assert sorted(columns, key=lambda r: r["transaction_id"]) == sorted(
        objects, key=lambda r: r["transaction_id"]
    )
    alerts = decided.alerts()
    assert alerts and {a.transaction_id for a in alerts} == {d.transaction_id for d in deciding if d.is_fraud}
    assert all(a.reasons for a in alerts)
