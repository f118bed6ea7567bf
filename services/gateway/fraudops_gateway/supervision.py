"""The gateway's background work, watched: what readiness reports, and tasks that restart when they fail.

Every background task runs under `supervise` (the state reads, the decision writer) or `run_every`
(the periodic refreshes): an exception its own code does not expect is logged with its traceback,
counted in `fraudops_gateway_background_failures_total{task}` and marks the task failing —
`/health/ready` says not ready — and the task runs again after a backoff that doubles up to
RESTART_MAX_S. It is healthy again once a unit of its work succeeds. `/health/ready` reads only
this state, kept up to date by work the gateway does anyway: a probe costs no database round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fraudops_gateway import metrics

log = logging.getLogger(__name__)
RESTART_BASE_S = 0.5
RESTART_MAX_S = 30.0


class BackgroundHealth:
    """Which background tasks are failing, and whether the database answered the last time it was used."""

    def __init__(self) -> None:
        self._failing: set[str] = set()
        self.database_reachable: bool | None = None  # None: not tried yet

    def failed(self, task: str) -> None:
        self._failing.add(task)

    def recovered(self, task: str) -> None:
        self._failing.discard(task)

    def is_failing(self, task: str) -> bool:
        return task in self._failing

    @property
    def ok(self) -> bool:
        return not self._failing and self.database_reachable is True

    def checks(self) -> dict[str, str]:
        """For `/health/ready`: states only, never an error's text (the log has it)."""
        database = {True: "reachable", False: "unreachable", None: "not checked yet"}[self.database_reachable]
        background = "failing: " + ", ".join(sorted(self._failing)) if self._failing else "running"
        return {"database": database, "background": background}


def _report_failure(task: str, failures: int, health: BackgroundHealth | None) -> float:
    """Log the exception being handled with its traceback, count it, mark the task failing (unless
    `health` is None: work readiness does not depend on); the backoff."""
    delay_s = min(RESTART_MAX_S, RESTART_BASE_S * 2 ** (failures - 1))
    log.exception(
        "background task failed; running it again after a pause",
        extra={"task": task, "failures_in_a_row": failures, "pause_s": delay_s},
    )
    metrics.BACKGROUND_FAILURES.labels(task).inc()
    if health is not None:
        health.failed(task)
    return delay_s


async def supervise(task: str, run: Callable[[], Awaitable[None]], health: BackgroundHealth) -> None:
    """Run `run()` until it returns, restarting it with backoff after each unexpected exception.

    `run` may mark the task recovered itself (after each unit of work); returning normally does too.
    """
    failures = 0
    while True:
        try:
            await run()
        except Exception:  # noqa: BLE001 - anything the task did not handle: reported, then restarted
            failures = failures + 1 if health.is_failing(task) else 1  # a recovery in between starts over
            await asyncio.sleep(_report_failure(task, failures, health))
        else:
            health.recovered(task)
            return


@dataclass(frozen=True)
class Refresh:
    """A periodic background step of the gateway (see `run_every`)."""

    task: str
    interval_s: float
    step: Callable[[], Awaitable[object]]
    gates_readiness: bool = True


async def run_every(
    task: str,
    interval_s: float,
    step: Callable[[], Awaitable[object]],
    health: BackgroundHealth,
    stop: asyncio.Event,
    *,
    gates_readiness: bool = True,
) -> None:
    """`step()` every `interval_s` until `stop` is set; after an unexpected exception, again after the
    backoff, whatever the interval (a five-minute job that failed once is retried in seconds, not minutes).
    A task that does not gate readiness (monitoring) is logged and counted when it fails, but never
    takes the gateway out of its Service: deciding does not depend on it."""
    failures, pause_s = 0, interval_s
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=pause_s)
        if stop.is_set():
            return
        try:
            await step()
        except Exception:  # noqa: BLE001 - anything the step did not handle: reported, then tried again
            failures += 1
            pause_s = _report_failure(task, failures, health if gates_readiness else None)
        else:
            failures, pause_s = 0, interval_s
            health.recovered(task)
