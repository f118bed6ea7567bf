"""first_try: a call that succeeds leaves no garbage for the collector; one that fails is retried,
logged and raised exactly as the Retrying alone would."""

from __future__ import annotations

import gc

import pytest
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_none

from fraudops_stream.retrying import first_try


def retrying(reports: list[tuple[int, str]], attempts: int = 5) -> Retrying:
    def report(state: RetryCallState) -> None:
        assert state.outcome is not None
        reports.append((state.attempt_number, str(state.outcome.exception())))

    return Retrying(
        retry=retry_if_exception_type(OSError),
        stop=stop_after_attempt(attempts),
        wait=wait_none(),
        before_sleep=report,
        reraise=True,
    )


def test_a_call_that_succeeds_leaves_nothing_in_reference_cycles() -> None:
    reports: list[tuple[int, str]] = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(100):
            assert first_try(lambda: 7, lambda: retrying(reports)) == 7
        after_first_try = gc.collect()
        for _ in range(100):
            assert retrying(reports)(lambda: 7) == 7
        after_retrying = gc.collect()
    finally:
        gc.enable()
    assert after_first_try == 0
    assert after_retrying >= 100, "the Retrying alone leaves cycles (what first_try avoids)"
    assert reports == []


def test_a_failing_call_is_retried_from_its_first_failure_as_the_retrying_alone_would() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OSError(f"down {len(calls)}")
        return "up"

    reports: list[tuple[int, str]] = []
    assert first_try(flaky, lambda: retrying(reports)) == "up"
    assert len(calls) == 3, "the first failure counts as the Retrying's first attempt: no extra call"
    assert reports == [(1, "down 1"), (2, "down 2")]


def test_what_the_retrying_does_not_retry_is_raised_as_it_is_and_a_lasting_failure_gives_up() -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("bad input")

    reports: list[tuple[int, str]] = []
    with pytest.raises(ValueError, match="bad input"):
        first_try(broken, lambda: retrying(reports))
    assert calls == [1]
    assert reports == []

    def down() -> None:
        calls.append(1)
        raise OSError("still down")

    calls.clear()
    with pytest.raises(OSError, match="still down"):
        first_try(down, lambda: retrying(reports, attempts=3))
    assert len(calls) == 3
    assert [attempt for attempt, _ in reports] == [1, 2]
