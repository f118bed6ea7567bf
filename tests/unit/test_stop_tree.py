"""stop_tree on a real process tree: a clean stop asks with SIGTERM, a crash (the chaos suite's kill -9)
sends SIGKILL first, which ends even a tree that ignores SIGTERM without waiting for the grace period."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil

from fraudops_infra.processes import stop_tree
from tests.waiting import wait_until

# A parent that starts a child; both wait on their stdin (they run until they are stopped).
TREE = (
    "import signal, subprocess, sys; "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN) if 'ignore' in sys.argv else None; "
    "subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'], stdin=subprocess.PIPE); "
    "sys.stdin.read()"
)


def _tree(*args: str) -> tuple[psutil.Process, psutil.Process]:
    parent = subprocess.Popen([sys.executable, "-c", TREE, *args], stdin=subprocess.PIPE)
    [child] = wait_until(lambda: psutil.Process(parent.pid).children(), 30, "the parent's child")
    return psutil.Process(parent.pid), child


def _gone(process: psutil.Process) -> bool:
    return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE


def test_sigterm_first_stops_the_parent_and_its_child() -> None:
    parent, child = _tree()

    stop_tree(parent.pid, timeout_s=20)

    assert _gone(parent) and _gone(child)


def test_sigkill_first_ends_a_tree_that_ignores_sigterm_without_the_grace_period() -> None:
    parent, child = _tree("ignore")
    started = time.monotonic()

    stop_tree(parent.pid, timeout_s=120, first_signal=signal.SIGKILL)

    assert time.monotonic() - started < 60, "waited for the grace period"
    assert _gone(parent) and _gone(child)
