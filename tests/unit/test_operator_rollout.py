"""The rollout state machine, as a specification: spec + last state + verdict + time → next state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fraudops_operator.analysis import Outcome, Verdict
from fraudops_operator.resources import FraudModel
from fraudops_operator.rollout import Phase, RolloutState, analysis_due, candidate_weight, next_state
from tests.unit.fraud_models import CANDIDATE, STABLE, stored_fraud_model

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
STEPS = [{"weight": 5, "pause": "10m"}, {"weight": 25, "analysis": True}, {"weight": 50, "analysis": True}]
PASSED = Verdict(Outcome.PASSED, "AnalysisPassed", "error rate 0.0010 ≤ maxErrorRate 0.0100")
FAILED = Verdict(
    Outcome.FAILED, "ErrorRateTooHigh", "error rate 0.0520 > maxErrorRate 0.0100 (stable 0.0010)"
)
INCONCLUSIVE = Verdict(Outcome.INCONCLUSIVE, "InsufficientSamples", "candidate made 12 decisions in 5m")


def fraud_model(
    candidate: dict | None = CANDIDATE, stable: dict | None = STABLE, **rollout: Any
) -> FraudModel:
    spec: dict[str, Any] = {"rollout": {"steps": STEPS, "analysis": {"interval": "1m"}, **rollout}}
    if stable is not None:
        spec["stable"] = stable
    if candidate is not None:
        spec["candidate"] = candidate
    return stored_fraud_model(spec)


def started(model: FraudModel) -> RolloutState:
    return next_state(model, None, T0).state


def test_a_model_without_candidate_is_stable_at_full_weight() -> None:
    model = fraud_model(candidate=None)
    state = next_state(model, None, T0).state
    assert state.phase == Phase.STABLE
    assert candidate_weight(model, state) == 0


def test_a_model_without_any_version_is_pending() -> None:
    assert next_state(fraud_model(candidate=None, stable=None), None, T0).state.phase == Phase.PENDING


def test_a_new_candidate_starts_a_canary_at_the_first_weight() -> None:
    model = fraud_model()
    transition = next_state(model, None, T0)
    assert transition.state.phase == Phase.PAUSED
    assert transition.state.candidate_version == "2026-11-28"
    assert candidate_weight(model, transition.state) == 5
    assert [e.reason for e in transition.events] == ["RolloutStarted"]


def test_a_pause_step_moves_on_only_after_its_pause() -> None:
    model = fraud_model()
    state = started(model)
    assert next_state(model, state, T0 + timedelta(minutes=9)).state == state
    after = next_state(model, state, T0 + timedelta(minutes=10)).state
    assert (after.phase, after.step, candidate_weight(model, after)) == (Phase.ANALYSING, 1, 25)


def test_an_analysis_step_is_analysed_one_interval_in_and_then_every_interval() -> None:
    model = fraud_model()
    state = next_state(model, started(model), T0 + timedelta(minutes=10)).state
    assert not analysis_due(model, state, T0 + timedelta(minutes=10, seconds=59))
    assert analysis_due(model, state, T0 + timedelta(minutes=11))
    analysed = next_state(model, state, T0 + timedelta(minutes=11), INCONCLUSIVE).state
    assert not analysis_due(model, analysed, T0 + timedelta(minutes=11, seconds=30))
    assert analysis_due(model, analysed, T0 + timedelta(minutes=12))


def test_an_inconclusive_analysis_holds_the_step() -> None:
    model = fraud_model()
    state = next_state(model, started(model), T0 + timedelta(minutes=10)).state
    transition = next_state(model, state, T0 + timedelta(minutes=11), INCONCLUSIVE)
    assert (transition.state.phase, transition.state.step) == (Phase.ANALYSING, 1)
    assert [e.reason for e in transition.events] == ["AnalysisInconclusive"]


def test_good_metrics_walk_the_canary_through_every_step_to_promotion() -> None:
    model = fraud_model()
    state = next_state(model, started(model), T0 + timedelta(minutes=10)).state
    state = next_state(model, state, T0 + timedelta(minutes=11), PASSED).state
    assert (state.step, candidate_weight(model, state)) == (2, 50)
    transition = next_state(model, state, T0 + timedelta(minutes=12), PASSED)
    assert transition.state.phase == Phase.PROMOTED
    assert candidate_weight(model, transition.state) == 100
    assert transition.events[-1].reason == "Promoted"
    assert "2026-11-01 is retired" in transition.state.message


def test_a_failed_analysis_rolls_back_and_quotes_the_failing_number() -> None:
    model = fraud_model()
    state = next_state(model, started(model), T0 + timedelta(minutes=10)).state
    transition = next_state(model, state, T0 + timedelta(minutes=11), FAILED)
    assert transition.state.phase == Phase.ROLLED_BACK
    assert candidate_weight(model, transition.state) == 0
    assert "error rate 0.0520 > maxErrorRate 0.0100" in transition.state.message
    assert "weight 25% (step 2 of 3)" in transition.state.message
    assert transition.events[0].type == "Warning"


def test_abort_works_mid_rollout() -> None:
    state = started(fraud_model())
    aborted = next_state(fraud_model(abort=True), state, T0 + timedelta(minutes=1)).state
    assert aborted.phase == Phase.ABORTED
    assert "aborted at weight 5% (step 1 of 3)" in aborted.message


def test_promote_works_mid_rollout() -> None:
    state = started(fraud_model())
    promoted = next_state(fraud_model(promote=True), state, T0 + timedelta(minutes=1)).state
    assert promoted.phase == Phase.PROMOTED


def test_a_manual_promotion_overrules_a_rollback() -> None:
    model = fraud_model()
    state = next_state(model, started(model), T0 + timedelta(minutes=10)).state
    rolled_back = next_state(model, state, T0 + timedelta(minutes=11), FAILED).state
    assert (
        next_state(fraud_model(promote=True), rolled_back, T0 + timedelta(minutes=12)).state.phase
        == Phase.PROMOTED
    )


def test_a_finished_rollout_stays_finished_without_events() -> None:
    model = fraud_model()
    rolled_back = next_state(model, started(model), T0 + timedelta(minutes=1), FAILED).state
    transition = next_state(model, rolled_back, T0 + timedelta(hours=5))
    assert transition.state == rolled_back and transition.events == ()


def test_removing_the_candidate_mid_rollout_returns_to_stable() -> None:
    transition = next_state(fraud_model(candidate=None), started(fraud_model()), T0 + timedelta(minutes=1))
    assert transition.state.phase == Phase.STABLE
    assert [e.reason for e in transition.events] == ["CandidateRemoved"]


def test_a_new_candidate_version_restarts_from_the_first_step() -> None:
    model = fraud_model()
    state = next_state(model, started(model), T0 + timedelta(minutes=10)).state
    other = fraud_model(candidate={"version": "2026-12-05", "modelUri": "s3://models/card-fraud/2026-12-05"})
    restarted = next_state(other, state, T0 + timedelta(minutes=11)).state
    assert (restarted.candidate_version, restarted.step, restarted.step_started_at) == (
        "2026-12-05",
        0,
        T0 + timedelta(minutes=11),
    )


def test_without_auto_promote_the_last_step_waits_for_a_manual_promotion() -> None:
    model = fraud_model(steps=[{"weight": 50, "pause": "1m"}], autoPromote=False)
    waiting = next_state(model, started(model), T0 + timedelta(minutes=1)).state
    assert (waiting.phase, waiting.reason) == (Phase.PAUSED, "AwaitingPromotion")
    assert next_state(model, waiting, T0 + timedelta(minutes=2)).events == ()


def test_an_ab_test_splits_customers_then_promotes_after_its_duration() -> None:
    model = fraud_model(
        strategy="abTest", abTest={"stableWeight": 70, "candidateWeight": 30, "duration": "1h"}
    )
    state = started(model)
    assert (state.phase, candidate_weight(model, state)) == (Phase.ANALYSING, 30)
    passed_early = next_state(model, state, T0 + timedelta(minutes=1), PASSED).state
    assert passed_early.phase == Phase.ANALYSING  # the test runs its full hour
    assert next_state(model, passed_early, T0 + timedelta(hours=1), PASSED).state.phase == Phase.PROMOTED


def test_a_shadow_run_gives_the_candidate_no_decisions() -> None:
    model = fraud_model(strategy="shadow")
    assert candidate_weight(model, started(model)) == 0


def test_the_state_survives_a_round_trip_through_the_status() -> None:
    model = fraud_model()
    state = next_state(
        model,
        next_state(model, started(model), T0 + timedelta(minutes=10)).state,
        T0 + timedelta(minutes=11),
        INCONCLUSIVE,
    ).state
    assert RolloutState.from_status(state.to_status()) == state
