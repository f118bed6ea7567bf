"""The servers a benchmark starts: `fraudops serve …` on a free loopback port, ready once its health
endpoint answers 200, stopped by SIGTERM (drained) when the block ends."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psutil

from fraudops_infra.processes import fraudops_command


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout_s: float, process: subprocess.Popen, log: Path) -> None:
    """Until `url` answers 200; fails with the log's tail when `process` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{url} never answered: the process exited with {process.returncode}; "
                f"log:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout_s:.0f} s; log:\n{log.read_text()[-3000:]}")


@contextmanager
def running_server(
    command: Sequence[str], env: dict[str, str], log: Path, ready_path: str, port: int | None = None
) -> Iterator[tuple[int, psutil.Process]]:
    """`fraudops serve <command…> --port <port>` (a free one by default) until the block ends; yields the
    port and the process (for its CPU times)."""
    port = port or free_port()
    with open(log, "ab") as output:
        process = subprocess.Popen(
            fraudops_command("serve", *command, "--port", str(port)),
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}{ready_path}", 120, process, log)
        yield port, psutil.Process(process.pid)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=90)
