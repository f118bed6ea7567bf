"""Polling with a deadline: the one way the tests wait for something to become true (stdlib only).

A test never sleeps a fixed time to let something happen: it polls a check until it holds, fails
with a message that says what it waited for once the deadline passes, and stops at once when a
process it depends on has died (a crashed server does not answer in another minute either).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

__all__ = ["ProcessExited", "Running", "WaitTimedOut", "wait_until"]

T = TypeVar("T")


class Running(Protocol):
    """What `alive` needs of a process (a `subprocess.Popen` is one): its return code once it has
    exited, else None. Its repr names it in the failure."""

    def poll(self) -> int | None: ...


class WaitTimedOut(AssertionError):
    """The check did not hold before the deadline."""


class ProcessExited(AssertionError):
    """A process that had to keep running exited while we waited."""

    def __init__(self, message: str, returncode: int) -> None:
        super().__init__(message)
        self.returncode = returncode


def wait_until(
    check: Callable[[], T | None],
    timeout_s: float,
    what: str | Callable[[], str],
    *,
    interval_s: float = 0.25,
    alive: Iterable[Running] = (),
) -> T:
    """The first truthy value of `check()`, asked every `interval_s` until `timeout_s` has passed.

    On timeout raises WaitTimedOut (an AssertionError) naming `what` and the timeout, with the last
    value `check()` gave unless that was None or False. `what` may be a callable: it is asked only
    when the wait fails, so it can describe how things stood then (a log tail, what was missing).
    When a process in `alive` has exited, fails at once with ProcessExited (also an AssertionError)
    and its return code.
    """
    processes = list(alive)
    deadline = time.monotonic() + timeout_s
    while True:
        last = check()
        if last:
            return last
        for process in processes:
            returncode = process.poll()
            if returncode is not None:
                raise ProcessExited(
                    f"{process!r} exited with code {returncode} while waiting for {_said(what)}",
                    returncode,
                )
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0:
            shown = "" if last is None or last is False else f" (last: {last!r})"
            raise WaitTimedOut(f"timed out after {round(timeout_s, 2):g} s waiting for {_said(what)}{shown}")
        time.sleep(min(interval_s, remaining_s))


def _said(what: str | Callable[[], str]) -> str:
    return what() if callable(what) else what
