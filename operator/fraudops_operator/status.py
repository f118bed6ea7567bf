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

CONDITION_ORDER = ("Ready", "Progressing", "AnalysisPassed", "EntityStateReady")


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


def entity_state_readiness(name: str, deployment: Mapping[str, Any] | None) -> Readiness:
    """Whether the entity-state component's Deployment `name` has its one replica available at its current
    spec. Until it has, the consumers wait for the table it publishes (they pause, and stay in their group)."""
    if deployment is None:
        return Readiness(False, "NotCreated", f"Deployment {name} does not exist yet")
    status = deployment.get("status") or {}
    current = status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 1)
    if current and status.get("updatedReplicas", 0) >= 1 and status.get("availableReplicas", 0) >= 1:
        return Readiness(True, "Available", f"Deployment {name} has its replica available")
    return Readiness(
        False,
        "Unavailable",
        f"Deployment {name} has no available replica: the consumers wait for the entity table it publishes "
        f"(kubectl logs deployment/{name})",
    )


def _set_readiness(
    conditions: Sequence[Mapping[str, Any]], type_: str, readiness: Readiness, now: datetime, generation: int
) -> list[dict[str, Any]]:
    status = "True" if readiness.ready else "False"
    return set_condition(conditions, type_, status, readiness.reason, readiness.message, now, generation)


def _order(type_: str) -> int:
    return CONDITION_ORDER.index(type_) if type_ in CONDITION_ORDER else len(CONDITION_ORDER)


def fraud_model_status(
    model: FraudModel,
    state: RolloutState,
    readiness: Readiness,
    previous: Mapping[str, Any],
    verdict: Verdict | None,
    now: datetime,
    entity_state: Readiness | None = None,
) -> dict[str, Any]:
    """The whole status for this state; `previous` supplies conditions that did not change this tick.
    `entity_state`: the entity-state component's readiness (None: the model runs none, and the condition
    goes)."""
    generation = model.ref.generation
    conditions: list[dict[str, Any]] = [
        c for c in previous.get("conditions") or [] if entity_state or c["type"] != "EntityStateReady"
    ]
    conditions = _set_readiness(conditions, "Ready", readiness, now, generation)
    conditions = set_condition(
        conditions,
        "Progressing",
        "True" if state.phase.active else "False",
        state.reason or state.phase.value,
        state.message,
        now,
        generation,
    )
    if entity_state is not None:
        conditions = _set_readiness(conditions, "EntityStateReady", entity_state, now, generation)
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
