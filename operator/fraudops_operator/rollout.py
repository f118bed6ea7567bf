"""The rollout state machine (pure): from the spec, the last state, an analysis verdict and the time, the next state.

    Pending ─▶ Stable ─(candidate)─▶ Progressing ⇄ Paused ⇄ Analysing ─▶ Promoted
                                          │            │         │
                                          └── abort ───┴─ fail ──┴──▶ Aborted / RolledBack

Every strategy is a list of steps (a weight and a mode, a minimum time, whether to analyse): a canary
has the user's steps, an A-B test and a shadow run have one step each. The state is kept in
`status.rollout`, so a restarted operator resumes where the last one stopped. Each transition carries
the message (with its numbers) that goes into the conditions and the Event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from fraudops.routing import VariantMode
from fraudops_operator.analysis import Outcome, Verdict
from fraudops_operator.resources import FraudModel, RolloutSpec, Strategy


class Phase(StrEnum):
    PENDING = "Pending"  # no model version at all yet
    STABLE = "Stable"
    PROGRESSING = "Progressing"  # in a step with neither pause nor analysis: moves on at the next tick
    PAUSED = "Paused"
    ANALYSING = "Analysing"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    ABORTED = "Aborted"

    @property
    def active(self) -> bool:
        return self in (Phase.PROGRESSING, Phase.PAUSED, Phase.ANALYSING)

    @property
    def finished(self) -> bool:
        return self in (Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED)


@dataclass(frozen=True)
class RolloutStep:
    """One step of any strategy: the candidate's share and mode, and what must happen before the next."""

    weight: int
    mode: VariantMode
    min_duration_s: float
    analysis: bool


def plan(rollout: RolloutSpec) -> tuple[RolloutStep, ...]:
    if rollout.strategy == Strategy.AB_TEST:
        return (RolloutStep(rollout.ab_candidate_weight, VariantMode.AB, rollout.ab_duration_s, True),)
    if rollout.strategy == Strategy.SHADOW:
        return (RolloutStep(0, VariantMode.SHADOW, rollout.shadow_duration_s, True),)
    return tuple(RolloutStep(s.weight, VariantMode.SERVE, s.pause_s, s.analysis) for s in rollout.steps)


@dataclass(frozen=True)
class RolloutState:
    """What `status.rollout` remembers between ticks (and across operator restarts)."""

    phase: Phase
    candidate_version: str | None = None
    step: int = 0
    step_started_at: datetime | None = None
    last_analysis_at: datetime | None = None
    analysis_passed: bool = False  # in the current step
    reason: str = ""
    message: str = ""

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "phase": self.phase.value,
            "step": self.step,
            "analysisPassed": self.analysis_passed,
            "reason": self.reason,
            "message": self.message,
        }
        if self.candidate_version is not None:
            status["candidateVersion"] = self.candidate_version
        if self.step_started_at is not None:
            status["stepStartedAt"] = _timestamp(self.step_started_at)
        if self.last_analysis_at is not None:
            status["lastAnalysisAt"] = _timestamp(self.last_analysis_at)
        return status

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> RolloutState | None:
        if not status or "phase" not in status:
            return None
        return cls(
            phase=Phase(status["phase"]),
            candidate_version=status.get("candidateVersion"),
            step=int(status.get("step", 0)),
            step_started_at=_parse_time(status.get("stepStartedAt")),
            last_analysis_at=_parse_time(status.get("lastAnalysisAt")),
            analysis_passed=bool(status.get("analysisPassed", False)),
            reason=status.get("reason", ""),
            message=status.get("message", ""),
        )


@dataclass(frozen=True)
class RolloutEvent:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Transition:
    state: RolloutState
    events: tuple[RolloutEvent, ...] = ()


def current_step(model: FraudModel, state: RolloutState) -> RolloutStep | None:
    steps = plan(model.rollout)
    if not state.phase.active or not steps:
        return None
    return steps[min(state.step, len(steps) - 1)]  # the steps may have been shortened mid-rollout


def candidate_weight(model: FraudModel, state: RolloutState) -> int:
    """Percent of decisions the candidate takes in this state."""
    if state.phase == Phase.PROMOTED:
        return 100
    step = current_step(model, state)
    return step.weight if step is not None and step.mode != VariantMode.SHADOW else 0


def analysis_due(model: FraudModel, state: RolloutState, now: datetime) -> bool:
    """Whether this tick should query the metrics: an analysed step, at least one interval into it."""
    step = current_step(model, state)
    if step is None or not step.analysis or state.step_started_at is None:
        return False
    interval = timedelta(seconds=model.rollout.analysis.interval_s)
    last = (
        state.last_analysis_at
        if state.last_analysis_at and state.last_analysis_at >= state.step_started_at
        else state.step_started_at
    )
    return now >= last + interval


def next_state(
    model: FraudModel, previous: RolloutState | None, now: datetime, verdict: Verdict | None = None
) -> Transition:
    """The state after this tick. `verdict` is the analysis run this tick (only when `analysis_due`)."""
    rollout, candidate = model.rollout, model.candidate
    if model.stable is None:
        return _settle(previous, Phase.PENDING, "NoModel", "no model version yet: set spec.stable")
    if candidate is None:
        if previous is not None and previous.phase.active:
            message = (
                f"rollout of {previous.candidate_version} ended: spec.candidate was removed; "
                f"{model.stable.version} serves 100%"
            )
            return Transition(
                RolloutState(Phase.STABLE, reason="CandidateRemoved", message=message),
                (RolloutEvent("Normal", "CandidateRemoved", message),),
            )
        return _settle(previous, Phase.STABLE, "Stable", f"{model.stable.version} serves 100%")

    if previous is None or previous.candidate_version != candidate.version:
        # A new candidate that arrives with a manual decision skips the steps altogether.
        unstarted = RolloutState(Phase.STABLE, candidate_version=candidate.version)
        if rollout.abort:
            return _finish(model, unstarted, Phase.ABORTED, "Aborted", "aborted (spec.rollout.abort)")
        if rollout.promote:
            return _finish(
                model, unstarted, Phase.PROMOTED, "PromotedManually", "promoted (spec.rollout.promote)"
            )
        state = _start(model, now)
        return Transition(state, (RolloutEvent("Normal", state.reason, state.message),))

    state = previous
    if state.phase.finished:
        # A manual promotion may overrule an abort or a rollback; nothing else reopens a finished rollout.
        if rollout.promote and state.phase != Phase.PROMOTED:
            return _finish(
                model, state, Phase.PROMOTED, "PromotedManually", "promoted (spec.rollout.promote)"
            )
        return Transition(state)
    if rollout.abort:
        return _finish(model, state, Phase.ABORTED, "Aborted", "aborted (spec.rollout.abort)")
    if rollout.promote:
        return _finish(model, state, Phase.PROMOTED, "PromotedManually", "promoted (spec.rollout.promote)")

    events: list[RolloutEvent] = []
    if verdict is not None:
        state = replace(state, last_analysis_at=now)
        if verdict.outcome == Outcome.FAILED:
            return _finish(
                model, state, Phase.ROLLED_BACK, "RolledBack", f"analysis failed: {verdict.summary}"
            )
        # A step moves on when its latest analysis passed: an inconclusive one (too few samples) holds it.
        state = replace(state, analysis_passed=verdict.outcome == Outcome.PASSED)
        events.append(
            RolloutEvent(
                "Normal", f"Analysis{verdict.outcome.value}", f"{_where(model, state)}: {verdict.summary}"
            )
        )
    return _advance(model, state, now, events)


# --------------------------------------------------------------------------- steps


def _start(model: FraudModel, now: datetime) -> RolloutState:
    assert model.candidate is not None
    state = RolloutState(
        Phase.PROGRESSING, candidate_version=model.candidate.version, step=0, step_started_at=now
    )
    return _enter_step(model, state, 0, now, "RolloutStarted", f"{_strategy_name(model)} started")


def _advance(model: FraudModel, state: RolloutState, now: datetime, events: list[RolloutEvent]) -> Transition:
    step = current_step(model, state)
    assert step is not None and state.step_started_at is not None
    waited = (now - state.step_started_at).total_seconds() >= step.min_duration_s
    if not waited or (step.analysis and not state.analysis_passed):
        return Transition(state, tuple(events))
    why = "analysis passed" if step.analysis else f"{_seconds(step.min_duration_s)} at {step.weight}%"
    steps = plan(model.rollout)
    if state.step + 1 < len(steps):
        state = _enter_step(model, state, state.step + 1, now, "StepAdvanced", "")
        state = replace(state, message=f"{_strategy_name(model)}: {_where(model, state)} after {why}")
        return Transition(state, (*events, RolloutEvent("Normal", state.reason, state.message)))
    if not model.rollout.auto_promote:
        if state.phase == Phase.PAUSED and state.reason == "AwaitingPromotion":
            return Transition(state, tuple(events))
        message = f"{_where(model, state)}: all steps passed ({why}); waiting for spec.rollout.promote"
        state = replace(state, phase=Phase.PAUSED, reason="AwaitingPromotion", message=message)
        return Transition(state, (*events, RolloutEvent("Normal", state.reason, message)))
    transition = _finish(model, state, Phase.PROMOTED, "Promoted", f"all steps passed ({why})")
    return Transition(transition.state, (*events, *transition.events))


def _enter_step(
    model: FraudModel, state: RolloutState, index: int, now: datetime, reason: str, prefix: str
) -> RolloutState:
    step = plan(model.rollout)[index]
    phase = (
        Phase.ANALYSING if step.analysis else Phase.PAUSED if step.min_duration_s > 0 else Phase.PROGRESSING
    )
    state = replace(state, phase=phase, step=index, step_started_at=now, analysis_passed=False, reason=reason)
    return replace(state, message=f"{prefix}: {_where(model, state)}")


def _finish(model: FraudModel, state: RolloutState, phase: Phase, reason: str, why: str) -> Transition:
    assert model.candidate is not None and model.stable is not None
    candidate, stable = model.candidate.version, model.stable.version
    where = f" at {_where(model, state)}" if state.phase.active else ""
    if phase == Phase.PROMOTED:
        message = (
            f"{candidate} promoted{where} ({why}): it serves 100% and {stable} is retired; set "
            f"spec.stable to {candidate} and remove spec.candidate to make the spec say so"
        )
    elif phase == Phase.ROLLED_BACK:
        message = f"{candidate} rolled back{where}: {why}; {stable} serves 100% again"
    else:
        message = f"{candidate} aborted{where} ({why}); {stable} serves 100% again"
    finished = replace(state, phase=phase, reason=reason, message=message)
    return Transition(
        finished, (RolloutEvent("Normal" if phase == Phase.PROMOTED else "Warning", reason, message),)
    )


def _settle(previous: RolloutState | None, phase: Phase, reason: str, message: str) -> Transition:
    state = RolloutState(phase, reason=reason, message=message)
    if previous is not None and previous.phase == phase and previous.message == message:
        return Transition(previous)
    return Transition(state)


# --------------------------------------------------------------------------- words


def _strategy_name(model: FraudModel) -> str:
    assert model.candidate is not None
    names = {Strategy.CANARY: "canary", Strategy.AB_TEST: "A-B test", Strategy.SHADOW: "shadow run"}
    return f"{names[model.rollout.strategy]} of {model.candidate.version}"


def _where(model: FraudModel, state: RolloutState) -> str:
    steps = plan(model.rollout)
    step = steps[min(state.step, len(steps) - 1)]
    share = {
        VariantMode.SERVE: f"weight {step.weight}%",
        VariantMode.AB: f"{step.weight}% of customers",
        VariantMode.SHADOW: "scoring in shadow",
    }[step.mode]
    return f"{share} (step {min(state.step, len(steps) - 1) + 1} of {len(steps)})"


def _seconds(seconds: float) -> str:
    return f"{seconds:g}s"


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
