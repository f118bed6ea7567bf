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


def test_readiness_needs_the_database_seen_reachable() -> None:
    health = BackgroundHealth()
    assert not health.ok and health.checks()["database"] == "not checked yet"
    health.database_reachable = False
    assert not health.ok and health.checks() == {"database": "unreachable", "background": "running"}
