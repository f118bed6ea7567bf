"""Waiting out an unavailable dependency without leaving garbage behind at every call.

    first_try(call, lambda: Retrying(...))   # call() once; only if it raises, the Retrying takes over
    waited_out(call, retry, stop, before_sleep, max_wait_s)   # the stream processes' one Retrying

A tenacity call leaves ~16 objects in reference cycles (the Retrying and its call state), freed only
by the garbage collector. The stream processes wrap a few calls a batch in one and collect the young
generation every 50,000 net new objects (`fraudops.lean.settle_garbage_collection`), so at 2,000 tx/s
~35,000 of them piled up between collections and each collection took ~0.1 s of the consumer's thread
(measured in the entity latency run, every ~25 s). The first attempt now runs outside tenacity; when
it fails, the Retrying sees that same failure as its first attempt: what is retried, logged, counted
and waited is as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, wait_exponential
from tenacity.retry import retry_base

T = TypeVar("T")


def first_try(call: Callable[[], T], retrying: Callable[[], Retrying]) -> T:
    """`call()`; if it raises, `retrying()` runs it again from that failure on (its first attempt)."""
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - the Retrying decides what is retried and what is raised
        first: list[Exception] = [exc]

    def attempt() -> T:
        if first:
            raise first.pop()
        return call()

    return retrying()(attempt)


def waited_out(
    call: Callable[[], T],
    retry: retry_base,
    stop: Callable[[], bool],
    before_sleep: Callable[[RetryCallState], None],
    max_wait_s: float,
) -> T:
    """`call()`, retried while `retry` says the failure is a dependency's and `stop()` is false, with a
    growing pause (0.2 s doubling, up to `max_wait_s`); then the last error is raised."""
    return first_try(
        call,
        lambda: Retrying(
            retry=retry,
            stop=lambda _: stop(),
            wait=wait_exponential(multiplier=0.2, max=max_wait_s),
            before_sleep=before_sleep,
            reraise=True,
        ),
    )
