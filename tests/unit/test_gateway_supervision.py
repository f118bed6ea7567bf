"""The gateway's background tasks: a failure is logged with its traceback, counted, makes the gateway
not ready, and the task runs again (after a backoff) until it recovers."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import REGISTRY

from fraudops_gateway import supervision
from fraudops_gateway.supervision import BackgroundHealth, run_every, supervise


def failures_counted(task: str) -> float:
    return REGISTRY.get_sample_value("fraudops_gateway_background_failures_total", {"task": task}) or 0.0


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervision, "RESTART_BASE_S", 0.01)


def test_a_task_that_fails_is_reported_restarted_and_healthy_again_once_it_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health = BackgroundHealth()
    health.database_reachable = True
    runs: list[bool] = []
    seen_while_failing: list[dict[str, str]] = []

    async def flaky() -> None:
        runs.append(True)
        if len(runs) > 1:
            seen_while_failing.append(health.checks())
        if len(runs) <= 2:
            raise KeyError("a bug")

    before = failures_counted("flaky")
    with caplog.at_level(logging.ERROR):
        asyncio.run(supervise("flaky", flaky, health))

    assert len(runs) == 3, "run again after each failure, until it returns"
    assert failures_counted("flaky") == before + 2
    failures = [r for r in caplog.records if r.name == "fraudops_gateway.supervision"]
    assert len(failures) == 2 and all(r.exc_info and r.exc_info[0] is KeyError for r in failures)
    assert failures[0].task == "flaky" and failures[1].pause_s == 2 * failures[0].pause_s  # type: ignore[attr-defined]
    assert seen_while_failing[0] == {"database": "reachable", "background": "failing: flaky"}
    assert health.ok and health.checks()["background"] == "running"


def test_a_periodic_step_that_fails_leaves_the_gateway_not_ready_until_a_step_succeeds() -> None:
    health = BackgroundHealth()
    health.database_reachable = True
    outcomes = iter([ValueError("bad"), ValueError("worse"), None, None])
    readiness: list[bool] = []

    async def scenario() -> None:
        stop = asyncio.Event()

        async def step() -> None:
            readiness.append(health.ok)
            outcome = next(outcomes)
            if outcome is None and len(readiness) == 4:
                stop.set()
            if outcome is not None:
                raise outcome

        await asyncio.wait_for(run_every("periodic", 0.01, step, health, stop), timeout=10)

    before = failures_counted("periodic")
    asyncio.run(scenario())

    assert readiness == [True, False, False, True], "not ready from the first failure to the first success"
    assert failures_counted("periodic") == before + 2
    assert health.ok


def test_a_failed_monitoring_step_is_retried_after_the_backoff_and_never_makes_the_gateway_unready() -> None:
    """A five-minute job (feedback quality) that failed once was retried only five minutes later, and the
    gateway stayed out of its Service all that time, though deciding does not depend on it."""
    health = BackgroundHealth()
    health.database_reachable = True
    outcomes = iter([None, ValueError("database away"), None])
    readiness: list[bool] = []
    stop = asyncio.Event()

    async def step() -> None:
        outcome = next(outcomes)
        readiness.append(health.ok)
        if outcome is None and len(readiness) == 3:
            stop.set()
        if outcome is not None:
            raise outcome

    async def scenario() -> float:
        started = asyncio.get_running_loop().time()
        # First run after 1 s, the failing one 1 s later; the retry comes after the 0.01-s backoff.
        await asyncio.wait_for(
            run_every("monitoring", 1.0, step, health, stop, gates_readiness=False), timeout=10
        )
        return asyncio.get_running_loop().time() - started

    before = failures_counted("monitoring")
    elapsed = asyncio.run(scenario())

    assert readiness == [True, True, True]
    assert failures_counted("monitoring") == before + 1
    assert elapsed < 2.5, f"the retry waited a whole interval ({elapsed:.2f} s)"


def test_readiness_needs_the_database_seen_reachable() -> None:
    health = BackgroundHealth()
    assert not health.ok and health.checks()["database"] == "not checked yet"
    health.database_reachable = False
    assert not health.ok and health.checks() == {"database": "unreachable", "background": "running"}
