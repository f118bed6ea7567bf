"""The FraudModel status (pure): phase, versions, weight, routing table and standard conditions.

Messages only change when something happens (no countdowns, no timestamps in text), so reconciling
an unchanged object produces an identical status and the handler writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fraudops_operator.analysis import Outcome, Verdict
from fraudops_operator.desired import (
    inference_service_name,
    routing_document,
    routing_table,
    served_versions,
    stable_version,
)
from fraudops_operator.resources import FraudModel
from fraudops_operator.rollout import Phase, RolloutState, candidate_weight

CONDITION_ORDER = ("Ready", "Progressing", "AnalysisPassed")


@dataclass(frozen=True)
class Readiness:
    """Whether every child could be applied, and if not, why (one CamelCase reason and a message)."""

    ready: bool
    reason: str
    message: str


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: datetime,
    generation: int,
) -> list[dict[str, Any]]:
    """Conditions with `type_` set; lastTransitionTime moves only when the status flips (Kubernetes convention)."""
    previous = next((c for c in conditions if c["type"] == type_), None)
    since = (
        previous["lastTransitionTime"]
        if previous and previous.get("status") == status
        else now.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    updated = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }
    others = [dict(c) for c in conditions if c["type"] != type_]
    return sorted([*others, updated], key=lambda c: _order(c["type"]))


def _order(type_: str) -> int:
    return CONDITION_ORDER.index(type_) if type_ in CONDITION_ORDER else len(CONDITION_ORDER)


def fraud_model_status(
    model: FraudModel,
    state: RolloutState,
    readiness: Readiness,
    previous: Mapping[str, Any],
    verdict: Verdict | None,
    now: datetime,
) -> dict[str, Any]:
    """The whole status for this state; `previous` supplies conditions that did not change this tick."""
    generation = model.ref.generation
    conditions: list[dict[str, Any]] = list(previous.get("conditions") or [])
    conditions = set_condition(
        conditions,
        "Ready",
        "True" if readiness.ready else "False",
        readiness.reason,
        readiness.message,
        now,
        generation,
    )
    conditions = set_condition(
        conditions,
        "Progressing",
        "True" if state.phase.active else "False",
        state.reason or state.phase.value,
        state.message,
        now,
        generation,
    )
    if verdict is not None:
        verdict_status = {Outcome.PASSED: "True", Outcome.FAILED: "False", Outcome.INCONCLUSIVE: "Unknown"}
        conditions = set_condition(
            conditions,
            "AnalysisPassed",
            verdict_status[verdict.outcome],
            verdict.reason,
            verdict.summary,
            now,
            generation,
        )
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": state.phase.value,
        "candidateWeight": candidate_weight(model, state),
        "rollout": state.to_status(),
        "conditions": conditions,
    }
    stable = stable_version(model, state)
    if stable is not None:
        status["stableVersion"] = stable.version
    if (
        model.candidate is not None
        and state.candidate_version == model.candidate.version
        and state.phase != Phase.PROMOTED
    ):
        status["candidateVersion"] = model.candidate.version
    table = routing_table(model, state)
    if table is not None:
        status["routing"] = routing_document(table)
    status["inferenceServices"] = [
        inference_service_name(model, v.version) for v in served_versions(model, state)
    ]
    return status
