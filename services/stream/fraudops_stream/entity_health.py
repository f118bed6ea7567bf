"""The entity-state component's health, decided from plain facts (no I/O): is it alive, is it caught up.

    health = EntityHealth(limits)
    health.progressed(now)                # a dependency answered: a round, a publish, a refused lock
    health.took_table() / lost_table()    # the writer lock held / gone with its connection
    health.measured(lag_records, epoch_lag)
    liveness(health, now), readiness(health, now)   # -> Verdict: GET /livez, GET /readyz

Alive (`/livez` 200): a dependency answered less than `outage_limit_s` ago. Waiting for the writer lock
held by another live instance counts (PostgreSQL answered: "held"); a PostgreSQL outage, or a call that
hangs, for longer than the limit does not — Kubernetes then restarts the process, which resumes from
what it published.

Ready (`/readyz` 200): alive, it holds the writer lock with its table restored, and it has published up
to the end of its input — the records behind the partitions' ends (as of its last round) are at most
`ready_lag_records`, and the epoch of the newest event it has read is at most `ready_lag_epochs` past
the epoch it has published. A stream consumer with ENTITY_TABLE=true reading a new record then finds
its epoch published (or one epoch short, for at most an epoch at an epoch's boundary).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class HealthLimits:
    #: a dependency silent (failing, or a call hanging) for longer than this: not alive
    outage_limit_s: float = 120.0
    #: records behind the partitions' ends still counted as caught up (one batch)
    ready_lag_records: int = 5000
    #: epochs between the newest event read and the published epoch still counted as caught up
    ready_lag_epochs: int = 1


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str


@dataclass
class EntityHealth:
    """What the component last knew about itself, written by its loop and read by the probes' thread."""

    limits: HealthLimits
    #: monotonic time a dependency last answered (the start counts: connecting has a limit too)
    last_progress: float = -math.inf
    holds_table: bool = False
    #: records behind the partitions' ends after the last round (None: not measured since the table was taken)
    lag_records: int | None = None
    #: epochs from the newest event read to the published epoch (None: nothing published while events wait)
    epoch_lag: int | None = None
    #: the dependency it waits for and why, while it waits
    waiting_for: str | None = None

    def progressed(self, now: float) -> None:
        self.last_progress = now
        self.waiting_for = None

    def waiting(self, what: str, now: float, *, answered: bool) -> None:
        """Waiting for something; `answered`: the dependency replied (e.g. "the lock is held"), so it
        still counts as progress."""
        self.waiting_for = what
        if answered:
            self.last_progress = now

    def took_table(self) -> None:
        self.holds_table = True
        self.lag_records = None
        self.epoch_lag = None

    def lost_table(self) -> None:
        self.holds_table = False
        self.lag_records = None
        self.epoch_lag = None

    def measured(self, lag_records: int, epoch_lag: int | None) -> None:
        self.lag_records = lag_records
        self.epoch_lag = epoch_lag


def liveness(health: EntityHealth, now: float) -> Verdict:
    silent_s = now - health.last_progress
    if silent_s > health.limits.outage_limit_s:
        return Verdict(
            False,
            f"no dependency has answered for {silent_s:.0f} s (limit {health.limits.outage_limit_s:g} s)"
            + (f"; waiting for: {health.waiting_for}" if health.waiting_for else ""),
        )
    if health.waiting_for:
        return Verdict(True, f"alive, waiting for: {health.waiting_for}")
    return Verdict(True, "alive")


def readiness(health: EntityHealth, now: float) -> Verdict:
    alive = liveness(health, now)
    if not alive.ok:
        return alive
    if not health.holds_table:
        return Verdict(False, "does not hold the entity table" + _waiting(health))
    if health.lag_records is None:
        return Verdict(False, "table taken; not caught up with the partitions yet" + _waiting(health))
    if health.lag_records > health.limits.ready_lag_records:
        return Verdict(
            False,
            f"{health.lag_records} records behind the partitions' ends "
            f"(ready at {health.limits.ready_lag_records} or fewer)",
        )
    if health.epoch_lag is None:
        return Verdict(False, "events read, no epoch published yet")
    if health.epoch_lag > health.limits.ready_lag_epochs:
        return Verdict(
            False,
            f"published epoch {health.epoch_lag} epochs behind the newest event read "
            f"(ready at {health.limits.ready_lag_epochs} or fewer)",
        )
    return Verdict(True, f"caught up: {health.lag_records} records, {health.epoch_lag} epochs behind")


def epoch_lag(newest_event_time: float | None, published_epoch: int | None, epoch_s: float) -> int | None:
    """Epochs between the newest event read and the published epoch (0: none read; None: none published)."""
    if newest_event_time is None:
        return 0
    if published_epoch is None:
        return None
    return max(0, math.floor(newest_event_time / epoch_s) - published_epoch)


def _waiting(health: EntityHealth) -> str:
    return f"; waiting for: {health.waiting_for}" if health.waiting_for else ""
