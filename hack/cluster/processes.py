"""Start the node's daemons detached (they outlive the `up` command), and stop them again.

Each daemon gets a log file and a pid file holding ``<pid> <start time>``: the start time (from
/proc/<pid>/stat) tells a live daemon from an unrelated process that happens to reuse its pid, so `down`
never signals a stranger. Whatever the daemons forked is found through the cgroup tree instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from hack.cluster import cgroups
from hack.cluster.config import Daemon
from hack.cluster.layout import NodeLayout


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None when no such process exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces; everything after its closing parenthesis splits cleanly.
    return int(stat.rsplit(")", 1)[1].split()[19])


def pid_file(layout: NodeLayout, name: str) -> Path:
    return layout.pid_dir / f"{name}.pid"


def log_file(layout: NodeLayout, name: str) -> Path:
    return layout.log_dir / f"{name}.log"


def spawn(layout: NodeLayout, daemon: Daemon, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `daemon` in its own session, in the node's daemons cgroup, logging to logs/<name>.log."""
    layout.pid_dir.mkdir(parents=True, exist_ok=True)
    layout.log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_file(layout, daemon.name)
    with open(log_path, "ab") as log:
        log.write(("$ " + " ".join(daemon.argv) + "\n").encode())
        log.flush()
        process = subprocess.Popen(
            daemon.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=layout.run_dir,
            env={**os.environ, "PYTHONPATH": str(layout.repo), **(env or {})},
            start_new_session=True,
            preexec_fn=lambda: cgroups.join_daemons_group(layout),
        )
    started = start_time(process.pid)
    pid_file(layout, daemon.name).write_text(f"{process.pid} {started}\n")
    return process


def running_pid(layout: NodeLayout, name: str) -> int | None:
    """The daemon's pid if its pid file names a live process that is still the one we started."""
    try:
        pid_text, started_text = pid_file(layout, name).read_text().split()
    except (FileNotFoundError, ValueError):
        return None
    pid = int(pid_text)
    return pid if str(start_time(pid)) == started_text else None


def stop(layout: NodeLayout, names: Iterable[str], grace_s: float = 5.0) -> None:
    """SIGTERM each named daemon in turn and wait for it, SIGKILL after `grace_s` (kube-apiserver
    would wait for its watches for longer: nothing of this node is kept, so there is no point)."""
    for name in names:
        pid = running_pid(layout, name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not _wait_gone(pid, grace_s):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 5.0)
        pid_file(layout, name).unlink(missing_ok=True)


def kill_tree(layout: NodeLayout, timeout_s: float = 30.0) -> set[int]:
    """SIGKILL every process in the node's cgroup tree until none is left; return those that survived."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = cgroups.processes(layout)
        if not alive or time.monotonic() > deadline:
            return alive
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        if start_time(pid) is None or _is_zombie(pid):
            return True
        time.sleep(0.1)
    return False


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
