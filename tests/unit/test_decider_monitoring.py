"""The Decider observes model monitoring where decisions are made: scores, alerts and feature drift per variant.

The scorer is a test double carrying an artifact folder with a drift reference, as the real Scorer
carries its artifact; the metrics are the real ones in the process registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from fraudops.drift import build_reference, write_reference
from fraudops.errors import RetryableError
from fraudops.extras import NO_EXTRA_FIELDS
from fraudops.routing import RoutingTable, Variant, VariantMode
from fraudops.scoring import Reason
from fraudops.variants import Decider

NAMES = ["amount", "hour"]


@dataclass
class Artifact:
    path: Path


class ArtifactScorer:
    """Scores each row as its first feature / 1000, with an artifact folder holding a drift reference."""

    extra_fields = NO_EXTRA_FIELDS

    def __init__(self, version: str, folder: Path) -> None:
        self.model_version = version
        self.threshold = 0.5
        self.feature_names = NAMES
        self.artifact = Artifact(folder)

    def score(self, features: np.ndarray) -> np.ndarray:
        return np.clip(features[:, 0] / 1000, 0, 1).astype(np.float32)

    def reasons(self, features: np.ndarray, top_k: int = 3, exact: bool = True) -> list[list[Reason]]:
        return [[Reason("amount", float(row[0]), 1.0)] for row in features]


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_each_variant_gets_its_scores_alerts_and_drift(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    training = np.column_stack([rng.uniform(0, 400, 20_000), rng.integers(0, 24, 20_000)])
    write_reference(build_reference(training, NAMES), tmp_path)
    table = RoutingTable(
        variants=[
            Variant(name="stable", model_version="mon-v1", model_uri="x"),
            Variant(name="challenger", model_version="mon-v2", mode=VariantMode.SHADOW, model_uri="y"),
        ]
    )
    decider = Decider(
        table,
        {"stable": ArtifactScorer("mon-v1", tmp_path), "challenger": ArtifactScorer("mon-v2", tmp_path)},
        source="unit",
    )
    live = np.column_stack([rng.uniform(0, 1200, 1000), rng.integers(0, 24, 1000)])  # amounts 3x wider

    decided = decider.decide(live, [f"t{i}" for i in range(1000)], [f"c{i}" for i in range(1000)])

    flagged = sum(int(part.flagged.sum()) for part in decided.parts if not part.shadow)
    assert flagged > 0
    stable = {"source": "unit", "variant": "stable", "model_version": "mon-v1"}
    assert value("fraudops_score_count", **stable, shadow="false") == 1000
    assert (
        value(
            "fraudops_score_count", source="unit", variant="challenger", model_version="mon-v2", shadow="true"
        )
        == 1000
    )
    assert value("fraudops_alerts_total", **stable) == flagged
    assert value("fraudops_alerts_total", source="unit", variant="challenger", model_version="mon-v2") == 0
    amount = value("fraudops_feature_psi", **stable, feature="amount")
    hour = value("fraudops_feature_psi", **stable, feature="hour")
    assert amount is not None and amount > 0.25
    assert hour is not None and hour < 0.1


def test_a_replaced_decider_removes_the_series_of_variants_it_no_longer_scores(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    write_reference(build_reference(rng.uniform(0, 400, (20_000, 2)), NAMES), tmp_path)
    stable, canary = ArtifactScorer("swap-v1", tmp_path), ArtifactScorer("swap-v2", tmp_path)
    during_canary = Decider(
        RoutingTable(
            variants=[
                Variant(name="stable", model_version="swap-v1", model_uri="x", weight=50),
                Variant(name="canary", model_version="swap-v2", model_uri="y", weight=50),
            ]
        ),
        {"stable": stable, "canary": canary},
        source="unit",
    )
    live = rng.uniform(0, 1200, (2000, 2))  # drifted: the PSI gauges of both variants are set
    during_canary.decide(live, [f"t{i}" for i in range(2000)], [f"c{i}" for i in range(2000)])
    canary_psi = {"source": "unit", "variant": "canary", "model_version": "swap-v2", "feature": "amount"}
    stable_psi = {"source": "unit", "variant": "stable", "model_version": "swap-v1", "feature": "amount"}
    assert value("fraudops_feature_psi", **canary_psi) is not None
    stable_monitor = during_canary.monitors.prepare("stable", stable, False)
    rolled_back = Decider(
        RoutingTable(variants=[Variant(name="stable", model_version="swap-v1", model_uri="x")]),
        {"stable": stable},
        source="unit",
    )

    rolled_back.take_over_monitors(during_canary)

    assert value("fraudops_feature_psi", **canary_psi) is None  # no FraudopsFeatureDrift for a gone canary
    assert (
        value(
            "fraudops_score_count", source="unit", variant="canary", model_version="swap-v2", shadow="false"
        )
        is None
    )
    assert value("fraudops_feature_psi", **stable_psi) is not None
    # The stable variant's drift history goes on in the new Decider (no restart from zero rows).
    assert rolled_back.monitors.prepare("stable", stable, False) is stable_monitor


def test_a_request_still_deciding_with_the_replaced_decider_does_not_bring_removed_series_back(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(8)
    write_reference(build_reference(rng.uniform(0, 400, (20_000, 2)), NAMES), tmp_path)
    canary = ArtifactScorer("late-v2", tmp_path)
    table = RoutingTable(variants=[Variant(name="canary", model_version="late-v2", model_uri="y")])
    replaced = Decider(table, {"canary": canary}, source="unit")
    live = rng.uniform(0, 1200, (1000, 2))
    replaced.decide(live, [f"t{i}" for i in range(1000)], [f"c{i}" for i in range(1000)])
    successor = Decider(
        RoutingTable(variants=[Variant(name="stable", model_version="late-v1", model_uri="x")]),
        {"stable": ArtifactScorer("late-v1", tmp_path)},
        source="unit",
    )
    successor.take_over_monitors(replaced)

    replaced.decide(live, [f"u{i}" for i in range(1000)], [f"d{i}" for i in range(1000)])  # in flight

    canary_psi = {"source": "unit", "variant": "canary", "model_version": "late-v2", "feature": "amount"}
    assert value("fraudops_feature_psi", **canary_psi) is None


def test_a_warmed_up_variant_exports_zero_scoring_errors_until_a_call_fails_and_loses_them_when_gone(
    tmp_path: Path,
) -> None:
    """The error series exists from the warm-up on (an error rate and the dashboard's panel have data
    before the first failure) and goes with the variant, like its scores."""
    rng = np.random.default_rng(8)
    write_reference(build_reference(rng.uniform(0, 400, (5_000, 2)), NAMES), tmp_path)
    stable, canary = ArtifactScorer("err-v1", tmp_path), ArtifactScorer("err-v2", tmp_path)
    canary_errors = {"source": "unit", "variant": "canary", "model_version": "err-v2"}
    during_canary = Decider(
        RoutingTable(
            variants=[
                Variant(name="stable", model_version="err-v1", model_uri="x", weight=50),
                Variant(name="canary", model_version="err-v2", model_uri="y", weight=50),
            ]
        ),
        {"stable": stable, "canary": canary},
        source="unit",
    )
    assert value("fraudops_scoring_errors_total", **canary_errors) is None

    rows = rng.uniform(0, 400, (200, 2))
    during_canary.decide(rows, [f"t{i}" for i in range(200)], [f"c{i}" for i in range(200)], monitored=False)
    assert value("fraudops_scoring_errors_total", **canary_errors) == 0
    assert (
        value("fraudops_scoring_errors_total", source="unit", variant="stable", model_version="err-v1") == 0
    )

    during_canary.monitors.count_error("canary", canary, False)
    assert value("fraudops_scoring_errors_total", **canary_errors) == 1

    rolled_back = Decider(
        RoutingTable(variants=[Variant(name="stable", model_version="err-v1", model_uri="x")]),
        {"stable": stable},
        source="unit",
    )
    rolled_back.take_over_monitors(during_canary)
    assert value("fraudops_scoring_errors_total", **canary_errors) is None
    assert (
        value("fraudops_scoring_errors_total", source="unit", variant="stable", model_version="err-v1") == 0
    )


class ExplainFailsOnce(ArtifactScorer):
    """A remote variant whose scores come back but whose explanation call fails once (a dropped connection)."""

    def __init__(self, version: str, folder: Path) -> None:
        super().__init__(version, folder)
        self.failures = 1

    def reasons(self, features: np.ndarray, top_k: int = 3, exact: bool = True) -> list[list[Reason]]:
        if self.failures:
            self.failures -= 1
            raise RetryableError("the explainer is unreachable")
        return super().reasons(features, top_k, exact)


def test_rows_a_variant_failed_to_decide_are_not_observed_as_its_scores(tmp_path: Path) -> None:
    """A canary that fails after scoring (its explanation call) decides nothing: its rows fall back to the
    stable variant and count there only. A stable variant that fails is retried by the caller: its rows
    count once, for the attempt that decided them."""
    rng = np.random.default_rng(9)
    write_reference(build_reference(rng.uniform(0, 400, (5_000, 2)), NAMES), tmp_path)
    rows = np.column_stack([np.full(400, 900.0), rng.integers(0, 24, 400)])  # every row is flagged
    ids, customers = [f"t{i}" for i in range(400)], [f"c{i}" for i in range(400)]

    canary_fails = Decider(
        RoutingTable(
            variants=[
                Variant(name="stable", model_version="dbl-v1", model_uri="x", weight=50),
                Variant(name="canary", model_version="dbl-v2", model_uri="y", weight=50),
            ]
        ),
        {"stable": ArtifactScorer("dbl-v1", tmp_path), "canary": ExplainFailsOnce("dbl-v2", tmp_path)},
        source="unit",
    )
    canary_fails.decide(rows, ids, customers)
    assert (
        value("fraudops_score_count", source="unit", variant="canary", model_version="dbl-v2", shadow="false")
        == 0
    )
    assert value("fraudops_alerts_total", source="unit", variant="canary", model_version="dbl-v2") == 0
    stable = {"source": "unit", "variant": "stable", "model_version": "dbl-v1"}
    assert value("fraudops_score_count", **stable, shadow="false") == 400
    assert value("fraudops_alerts_total", **stable) == 400

    stable_fails = Decider(
        RoutingTable(variants=[Variant(name="stable", model_version="dbl-v3", model_uri="x")]),
        {"stable": ExplainFailsOnce("dbl-v3", tmp_path)},
        source="unit",
    )
    with pytest.raises(RetryableError):
        stable_fails.decide(rows, ids, customers)
    stable_fails.decide(rows, ids, customers)  # the caller's retry
    retried = {"source": "unit", "variant": "stable", "model_version": "dbl-v3"}
    assert value("fraudops_score_count", **retried, shadow="false") == 400
    assert value("fraudops_alerts_total", **retried) == 400
