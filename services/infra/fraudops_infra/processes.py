"""Small process utilities: the fraudops command line, pid files, port checks, waiting, and stopping a
whole process tree."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

from fraudops.errors import InfraError


def fraudops_command(*args: str) -> list[str]:
    """The command line of `fraudops <args…>` run by this Python (the CLI's module, so it needs no
    console script on the PATH and uses this environment's packages)."""
    return [sys.executable, "-m", "fraudops_cli.main", *args]


def port_is_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.3) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def port_owner(port: int) -> str:
    """A short description of the process listening on `port`, for error messages."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                proc = psutil.Process(conn.pid)
                return f"pid {conn.pid} ({proc.name()})"
    except (psutil.Error, OSError):
        return "another process"
    return "another process"


def ensure_port_free(port: int, setting: str) -> None:
    """Fail with an actionable message when `port` is already taken by someone else."""
    if port_is_open(port):
        raise InfraError(
            f"port {port} on 127.0.0.1 is already in use by {port_owner(port)}; "
            f"stop that process or choose another port with {setting}=<port>"
        )


def read_pid(pid_file: Path) -> int | None:
    """The pid recorded in `pid_file` if that process is still alive, else None."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return pid if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE else None


def start_detached(
    argv: Sequence[str],
    log_file: Path,
    pid_file: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start `argv` in its own session (it outlives the CLI), output to `log_file`, pid to `pid_file`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def stop_tree(pid: int, timeout_s: float = 20.0, first_signal: signal.Signals = signal.SIGTERM) -> None:
    """`first_signal` (SIGTERM: a clean stop) to the process and its children, then SIGKILL whatever is
    left after `timeout_s`."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = [root, *root.children(recursive=True)]
    for proc in procs:
        try:
            proc.send_signal(first_signal)
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=5)


def wait_until(
    check: Callable[[], bool],
    timeout_s: float,
    what: str,
    log_file: Path | None = None,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll `check` until it is true; fail with the tail of `log_file` on timeout or early death."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if alive is not None and not alive():
            raise InfraError(f"{what} exited during start-up{_log_hint(log_file)}")
        time.sleep(0.2)
    raise InfraError(f"{what} did not become ready within {timeout_s:.0f} s{_log_hint(log_file)}")


def _log_hint(log_file: Path | None) -> str:
    if log_file is None or not log_file.exists():
        return ""
    lines = [line for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
    last = lines[-1][:300] if lines else ""
    return f"; see {log_file} (last line: {last!r})"


def run_checked(argv: Sequence[str], what: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; on failure raise InfraError with its last output line."""
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    except FileNotFoundError as exc:
        raise InfraError(f"{what}: command not found: {argv[0]}") from exc
    if result.returncode != 0:
        output = (result.stderr or result.stdout or "").strip().splitlines()
        raise InfraError(f"{what} failed (exit {result.returncode}): {output[-1] if output else 'no output'}")
    return result


def apt_install(packages: Sequence[str], why: str) -> None:
    """Install Debian packages (as root, or through sudo) — the one sanctioned way to get system parts."""
    if shutil.which("apt-get") is None:
        raise InfraError(
            f"{why} is missing and this is not a Debian/Ubuntu system; install {' '.join(packages)}"
        )
    prefix: list[str] = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        run_checked(
            [*prefix, "apt-get", "install", "-y", "-q", *packages],
            f"apt-get install {' '.join(packages)}",
            env=env,
        )
    except InfraError:
        run_checked([*prefix, "apt-get", "update", "-q"], "apt-get update", env=env)
        run_checked(
            [*prefix, "apt-get", "install", "-y", "-q", *packages],
            f"apt-get install {' '.join(packages)}",
            env=env,
        )
