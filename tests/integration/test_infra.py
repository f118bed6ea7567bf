"""`fraudops infra up` twice, `status`, then `down`: no error, and nothing of ours left running."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import psutil
import pytest

from tests.conftest import REPO_ROOT
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration


def ours(run_dir: str) -> list[str]:
    """Processes whose command line points into this run folder (PostgreSQL's data dir, Kafka's config)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if run_dir in command:
            found.append(command[:120])
    return found


def test_up_twice_status_down_leaves_no_process_behind() -> None:
    run_dir = REPO_ROOT / ".run" / f"infra-test-{os.getpid()}"
    env = {
        **os.environ,
        "RUN_DIR": str(run_dir),
        "POSTGRES_PORT": str(free_port()),
        "KAFKA_PORT": str(free_port()),
        "KAFKA_CONTROLLER_PORT": str(free_port()),
        "KAFKA_HEAP": "512M",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fraudops_cli.main", "infra", *args],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )

    try:
        first = cli("up")
        assert first.returncode == 0, first.stderr
        assert "postgres  started" in first.stdout and "kafka     started" in first.stdout
        second = cli("up")
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stdout
        status = cli("status")
        assert status.returncode == 0
        assert status.stdout.count("running") == 2
        assert "transactions(6)" in status.stdout
        assert ours(str(run_dir)), "PostgreSQL and Kafka run from the run folder"
        down = cli("down")
        assert down.returncode == 0, down.stderr
        assert ours(str(run_dir)) == []
        assert cli("status").stdout.count("stopped") == 2
    finally:
        cli("down")
        shutil.rmtree(run_dir, ignore_errors=True)
