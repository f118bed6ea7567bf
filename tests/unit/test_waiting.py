"""wait_until, the tests' one polling helper: it returns what the check found, fails with what it waited
for once the deadline passes, and fails at once when a process that had to keep running has exited."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.waiting import ProcessExited, WaitTimedOut, wait_until


@pytest.fixture
def running_process() -> Iterator[subprocess.Popen[bytes]]:
    """A real process that keeps running until the test ends."""
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    yield process
    process.kill()
    process.wait(timeout=10)


def test_returns_the_first_truthy_value_the_check_gives() -> None:
    answers: Iterator[dict[str, str] | None] = iter([None, {}, {"phase": "Stable"}, {"phase": "later"}])

    found = wait_until(lambda: next(answers), 5, "the phase", interval_s=0.01)

    assert found == {"phase": "Stable"}
    assert next(answers) == {"phase": "later"}, "no check after the first truthy value"


def test_times_out_naming_what_it_waited_for_the_timeout_and_the_last_value() -> None:
    started = time.monotonic()

    with pytest.raises(WaitTimedOut) as failure:
        wait_until(lambda: [], 0.3, "the rollout to settle", interval_s=0.05)

    assert isinstance(failure.value, AssertionError)
    assert str(failure.value) == "timed out after 0.3 s waiting for the rollout to settle (last: [])"
    assert 0.3 <= time.monotonic() - started < 5


def test_a_false_or_none_last_value_is_not_shown() -> None:
    with pytest.raises(WaitTimedOut, match=r"^timed out after 0.1 s waiting for the broker$"):
        wait_until(lambda: False, 0.1, "the broker", interval_s=0.02)


def test_a_callable_message_is_asked_once_at_the_end_so_it_describes_the_last_look() -> None:
    looks: list[int] = []
    asked: list[int] = []

    def check() -> bool:
        looks.append(len(looks))
        return False

    def what() -> str:
        asked.append(len(looks))
        return f"the trace (looked {len(looks)} times)"

    with pytest.raises(WaitTimedOut) as failure:
        wait_until(check, 0.2, what, interval_s=0.02)

    assert asked == [len(looks)] and len(looks) >= 2
    assert f"the trace (looked {len(looks)} times)" in str(failure.value)


def test_fails_at_once_with_the_return_code_when_a_process_that_must_run_has_exited() -> None:
    crashed = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    crashed.wait(timeout=30)
    started = time.monotonic()

    with pytest.raises(ProcessExited) as failure:
        wait_until(lambda: False, 60, "the server to answer", alive=[crashed])

    assert time.monotonic() - started < 5, "did not wait for the timeout"
    assert failure.value.returncode == 3
    assert isinstance(failure.value, AssertionError)
    assert str(failure.value) == (f"{crashed!r} exited with code 3 while waiting for the server to answer")


def test_a_process_still_running_lets_the_wait_go_on(running_process: subprocess.Popen[bytes]) -> None:
    answers = iter([0, 0, 0, 7])

    assert wait_until(lambda: next(answers), 5, "a count", interval_s=0.01, alive=[running_process]) == 7
    assert running_process.poll() is None
