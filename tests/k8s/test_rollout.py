"""Progressive rollouts end to end: the operator's timer, the rollout state machine, real Prometheus queries,
and the InferenceServices and routing tables that result, on the real API server."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from fraudops.routing import RoutingTable
from tests.k8s.cluster import Cluster, condition
from tests.k8s.conftest import OperatorRunner
from tests.k8s.objects import CANDIDATE, fast_analysis, fraud_model
from tests.k8s.prometheus import LocalPrometheus, Traffic, TrafficExporter
from tests.waiting import wait_until

pytestmark = pytest.mark.k8s

STABLE_ISVC, CANDIDATE_ISVC = "card-fraud-2026-11-01", "card-fraud-2026-11-28"


def send(traffic: TrafficExporter, namespace: str, variant: str, version: str, **profile: Any) -> None:
    traffic.send(
        Traffic(
            variant=variant,
            version=version,
            namespace=namespace,
            inferenceservice=f"card-fraud-{version}",
            model="card-fraud",
            **profile,
        )
    )


def status(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return (cluster.get("FraudModel", namespace, "card-fraud") or {}).get("status") or {}


# A canary judged twice before it is promoted (or rolled back).
ANALYSED_STEPS = [
    {"weight": 10, "pause": "1s"},
    {"weight": 30, "analysis": True},
    {"weight": 60, "analysis": True},
]


def start_canary(
    cluster: Cluster, namespace: str, steps: list[dict[str, Any]], prometheus_url: str | None = None
) -> None:
    """The FraudModel with CANDIDATE rolled out in `steps`, analysed against `prometheus_url` when given."""
    rollout: dict[str, Any] = {"steps": steps}
    if prometheus_url is not None:
        rollout["analysis"] = fast_analysis(prometheus_url)
    cluster.apply(fraud_model(namespace, candidate=CANDIDATE, rollout=rollout))


def wait_phase(cluster: Cluster, namespace: str, phase: str, timeout_s: float = 45) -> dict[str, Any]:
    """The FraudModel's status once its rollout is in `phase`."""
    return cluster.wait_for_phase("FraudModel", namespace, "card-fraud", phase, timeout_s)["status"]


def weights_until(cluster: Cluster, namespace: str, phase: str, timeout_s: float = 60) -> list[int]:
    """The candidate's weights, in the order the status showed them, until the rollout reaches `phase`."""
    weights: list[int] = []
    current: dict[str, Any] = {}

    def reached() -> bool:
        nonlocal current
        current = status(cluster, namespace)
        if current.get("phase") == phase:
            return True
        assert current.get("phase") not in ("RolledBack", "Aborted"), current
        weight = current.get("candidateWeight")
        if weight is not None and (not weights or weights[-1] != weight):
            weights.append(weight)
        return False

    wait_until(reached, timeout_s, lambda: f"{phase}; weights {weights}, status {current}", interval_s=0.1)
    return weights


def routing(cluster: Cluster, namespace: str) -> RoutingTable:
    return RoutingTable.model_validate(status(cluster, namespace)["routing"])


def reasons(cluster: Cluster, namespace: str) -> list[str]:
    return [e["reason"] for e in cluster.events(namespace, "card-fraud")]


def test_good_metrics_walk_a_canary_through_every_step_to_promotion(
    cluster: Cluster,
    operator: OperatorRunner,
    prometheus: LocalPrometheus,
    traffic: TrafficExporter,
    namespace: str,
) -> None:
    send(traffic, namespace, "stable", "2026-11-01")
    send(traffic, namespace, "canary", "2026-11-28")
    start_canary(cluster, namespace, ANALYSED_STEPS, prometheus.url)

    assert [w for w in weights_until(cluster, namespace, "Promoted") if w] == [10, 30, 60]

    final = status(cluster, namespace)
    assert (final["stableVersion"], final["candidateWeight"]) == ("2026-11-28", 100)
    assert [(v.name, v.model_version, v.weight) for v in routing(cluster, namespace).variants] == [
        ("stable", "2026-11-28", 100)
    ]
    cluster.wait_for(
        lambda: cluster.get("InferenceService", namespace, STABLE_ISVC) is None,
        "the old version's InferenceService to be retired",
    )
    assert cluster.get("InferenceService", namespace, CANDIDATE_ISVC) is not None
    analysis = condition({"status": final}, "AnalysisPassed")
    assert analysis["status"] == "True" and "error rate 0.0000 ≤ maxErrorRate 0.0100" in analysis["message"]
    assert "p99 latency" in analysis["message"] and "score PSI vs stable" in analysis["message"]
    seen = reasons(cluster, namespace)
    assert seen.count("StepAdvanced") == 2 and seen.count("AnalysisPassed") >= 2
    assert seen[0] == "RolloutStarted" and seen[-1] == "Promoted"


def test_bad_metrics_roll_back_with_a_condition_that_quotes_the_failing_number(
    cluster: Cluster,
    operator: OperatorRunner,
    prometheus: LocalPrometheus,
    traffic: TrafficExporter,
    namespace: str,
) -> None:
    send(traffic, namespace, "stable", "2026-11-01", decisions_per_s=200)
    send(traffic, namespace, "canary", "2026-11-28", decisions_per_s=200, error_rate=0.05)
    start_canary(cluster, namespace, ANALYSED_STEPS, prometheus.url)

    final = wait_phase(cluster, namespace, "RolledBack")
    progressing = condition({"status": final}, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "RolledBack")
    # Prometheus extrapolates increase() over a 10 s window, so the measured 5% is near, not exactly, 0.05.
    quoted = re.search(
        r"error rate (0\.\d{4}) > maxErrorRate 0\.0100 \(stable 0\.0000\)", progressing["message"]
    )
    assert quoted and 0.02 < float(quoted[1]) < 0.1, progressing["message"]
    assert "2026-11-28 rolled back at weight 30% (step 2 of 3)" in progressing["message"]
    analysis = condition({"status": final}, "AnalysisPassed")
    assert (analysis["status"], analysis["reason"]) == ("False", "ErrorRateTooHigh")
    assert (final["stableVersion"], final["candidateWeight"]) == ("2026-11-01", 0)
    assert [(v.model_version, v.weight) for v in routing(cluster, namespace).variants] == [
        ("2026-11-01", 100)
    ]
    cluster.wait_for(
        lambda: cluster.get("InferenceService", namespace, CANDIDATE_ISVC) is None,
        "the candidate's InferenceService to be deleted",
    )
    [rolled_back] = [e for e in cluster.events(namespace, "card-fraud") if e["reason"] == "RolledBack"]
    assert rolled_back["type"] == "Warning" and quoted[0] in rolled_back["message"]


def test_abort_mid_rollout_returns_everything_to_stable(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    start_canary(cluster, namespace, [{"weight": 10, "pause": "1h"}, {"weight": 50, "pause": "1h"}])
    cluster.wait_for(lambda: status(cluster, namespace).get("candidateWeight") == 10, "the canary at 10%")
    assert cluster.get("InferenceService", namespace, CANDIDATE_ISVC) is not None

    cluster.patch("FraudModel", namespace, "card-fraud", {"spec": {"rollout": {"abort": True}}})
    final = wait_phase(cluster, namespace, "Aborted")
    assert condition({"status": final}, "Progressing")["message"].startswith(
        "2026-11-28 aborted at weight 10% (step 1 of 2) (aborted (spec.rollout.abort))"
    )
    assert [(v.model_version, v.weight) for v in routing(cluster, namespace).variants] == [
        ("2026-11-01", 100)
    ]
    cluster.wait_for(
        lambda: cluster.get("InferenceService", namespace, CANDIDATE_ISVC) is None,
        "the candidate's InferenceService to be deleted",
    )
    assert "Aborted" in reasons(cluster, namespace)


def test_promote_mid_rollout_makes_the_candidate_stable(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    start_canary(cluster, namespace, [{"weight": 10, "pause": "1h"}, {"weight": 50, "pause": "1h"}])
    cluster.wait_for(lambda: status(cluster, namespace).get("candidateWeight") == 10, "the canary at 10%")

    cluster.patch("FraudModel", namespace, "card-fraud", {"spec": {"rollout": {"promote": True}}})
    final = wait_phase(cluster, namespace, "Promoted")
    assert (final["stableVersion"], final["candidateWeight"]) == ("2026-11-28", 100)
    assert [(v.name, v.model_version) for v in routing(cluster, namespace).variants] == [
        ("stable", "2026-11-28")
    ]
    cluster.wait_for(
        lambda: cluster.get("InferenceService", namespace, STABLE_ISVC) is None,
        "the old version's InferenceService to be retired",
    )
    assert "PromotedManually" in reasons(cluster, namespace)


def test_an_ab_test_routes_customers_stickily_by_the_split(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    cluster.apply(
        fraud_model(
            namespace,
            candidate=CANDIDATE,
            rollout={
                "strategy": "abTest",
                "abTest": {"stableWeight": 70, "candidateWeight": 30, "duration": "1h"},
            },
        )
    )
    wait_phase(cluster, namespace, "Analysing")  # the A-B test has started
    table = routing(cluster, namespace)
    assert [(v.name, v.mode, v.weight, v.model_version) for v in table.variants] == [
        ("stable", "ab", 70, "2026-11-01"),
        ("challenger", "ab", 30, "2026-11-28"),
    ]
    assert {v.endpoint for v in table.variants} == {
        f"http://{isvc}-predictor.{namespace}.svc.cluster.local" for isvc in (STABLE_ISVC, CANDIDATE_ISVC)
    }

    customers = np.array([f"customer-{i}" for i in range(4000)], dtype=object)
    first = table.route(np.array([f"tx-a-{i}" for i in range(4000)], dtype=object), customers)
    second = table.route(np.array([f"tx-b-{i}" for i in range(4000)], dtype=object), customers)
    assert (first == second).all()  # sticky: a customer's variant does not depend on the transaction
    assert 0.25 < first.mean() < 0.35


def test_a_shadow_deployment_scores_with_the_candidate_but_never_decides(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    cluster.apply(fraud_model(namespace, candidate=CANDIDATE, rollout={"strategy": "shadow"}))
    wait_phase(cluster, namespace, "Analysing")  # the shadow run has started
    table = routing(cluster, namespace)
    assert [(v.name, v.mode, v.weight) for v in table.deciding] == [("stable", "serve", 100)]
    assert [(v.name, v.mode, v.model_version) for v in table.shadows] == [
        ("challenger", "shadow", "2026-11-28")
    ]
    assert status(cluster, namespace)["candidateWeight"] == 0
    for isvc in (STABLE_ISVC, CANDIDATE_ISVC):
        cluster.wait_for(lambda isvc=isvc: cluster.get("InferenceService", namespace, isvc), isvc)


def test_restarting_the_operator_mid_rollout_changes_nothing_and_resumes_the_step(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    start_canary(
        cluster,
        namespace,
        [{"weight": 10, "pause": "1s"}, {"weight": 40, "pause": "8s"}, {"weight": 70, "pause": "1s"}],
    )
    cluster.wait_for(lambda: status(cluster, namespace).get("candidateWeight") == 40, "the canary at 40%")
    operator.wait_for_reconciles(namespace, 2)  # the tick after the step change has applied its children

    objects = [
        ("FraudModel", "card-fraud"),
        ("ConfigMap", "card-fraud-routing"),
        ("Deployment", "card-fraud-consumer"),
        ("ScaledObject", "card-fraud-consumer"),
        ("KafkaTopic", "card-fraud-transactions"),
        ("InferenceService", STABLE_ISVC),
        ("InferenceService", CANDIDATE_ISVC),
    ]

    def versions() -> dict[str, str]:
        return {
            f"{k}/{n}": cluster.must_get(k, namespace, n)["metadata"]["resourceVersion"] for k, n in objects
        }

    before, rollout_before = versions(), status(cluster, namespace)["rollout"]
    operator.restart()
    operator.wait_for_reconciles(namespace, 3, timeout_s=6)  # ticks of the new operator, inside the 8 s pause
    assert versions() == before, "the restarted operator changed objects that were already right"
    assert status(cluster, namespace)["rollout"] == rollout_before

    assert weights_until(cluster, namespace, "Promoted") == [40, 70]  # resumed at 40%, not from the start
