"""`fraudops infra up` twice, `status`, then `down`: no error, and nothing of ours left running; and
`infra up` from a checkout in a private folder (mode 700, as root's home is)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import psutil
import psycopg
import pytest

from fraudops_infra.processes import fraudops_command
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


def infra_cli(
    run_dir: Path, postgres_port: int | None = None
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`fraudops infra <args…>` for a stack of its own under `run_dir`, on free ports."""
    env = {
        **os.environ,
        "RUN_DIR": str(run_dir),
        "POSTGRES_PORT": str(postgres_port or free_port()),
        "KAFKA_PORT": str(free_port()),
        "KAFKA_CONTROLLER_PORT": str(free_port()),
        "KAFKA_HEAP": "512M",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            fraudops_command("infra", *args),
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )

    return cli


def test_up_twice_status_down_leaves_no_process_behind() -> None:
    run_dir = REPO_ROOT / ".run" / f"infra-test-{os.getpid()}"
    cli = infra_cli(run_dir)

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


def test_a_checkout_in_a_private_folder_starts_postgresql(tmp_path: Path) -> None:
    """As root the server runs as `postgres`, which cannot enter a mode-700 folder: its files go elsewhere."""
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    run_dir = private / "fraudops" / ".run"
    port = free_port()
    cli = infra_cli(run_dir, port)
    tables: set[str] = set()
    try:
        up = cli("up")
        cluster = (run_dir / "postgres").resolve()
        status = cli("status")
        if up.returncode == 0:
            with psycopg.connect(f"postgresql://fraudops@127.0.0.1:{port}/fraudops") as conn:
                tables = {
                    row[0]
                    for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                }
    finally:
        down = cli("down", "--delete-data")

    assert up.returncode == 0, up.stderr + up.stdout
    assert {"transactions", "decisions", "customer_feature_state"} <= tables, "the schema was migrated"
    if os.geteuid() == 0:  # a regular user's server runs as that user: no folder is out of its reach
        assert not cluster.is_relative_to(private), "the cluster's files are where `postgres` can reach them"
    assert status.stdout.count("running") == 2 and str(cluster / "data") in status.stdout, status.stdout
    assert down.returncode == 0, down.stderr
    assert not cluster.exists() and not (run_dir / "postgres").is_symlink(), (
        "--delete-data deletes the cluster"
    )
    assert ours(str(cluster)) == [] and ours(str(run_dir)) == []
