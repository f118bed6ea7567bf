"""Bad input to the CLI ends with one line that says what to do — never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fraudops_infra.processes import fraudops_command
from tests.conftest import REPO_ROOT

FRAUDOPS = fraudops_command()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FRAUDOPS, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0], lines[0]


def test_occupied_postgres_port_names_the_port_and_the_setting(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = run_cli("infra", "up", env={"POSTGRES_PORT": str(port), "RUN_DIR": str(tmp_path / "run")})
    assert_one_line_error(result, f"port {port}", "already in use", "POSTGRES_PORT")


def test_unknown_subcommand_is_one_usage_line() -> None:
    result = run_cli("infra", "sideways")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "No such command" in result.stderr


def test_invalid_setting_in_the_environment_is_reported_without_a_traceback() -> None:
    result = run_cli("infra", "status", env={"FRAUD_THRESHOLD": "1.5"})
    assert_one_line_error(result, "FRAUD_THRESHOLD")


def test_a_malformed_rate_limit_stops_the_gateway_at_start_with_one_line() -> None:
    result = run_cli("serve", "gateway", "--port", str(_free_port()), env={"GATEWAY_RATE_LIMIT": "lots"})
    assert_one_line_error(result, "GATEWAY_RATE_LIMIT='lots'", "not a rate limit")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"FRAUD_THRESHOLD": "high"}, "FRAUD_THRESHOLD='high'"),
        ({"MODEL_PATH": "/nonexistent/model"}, "/nonexistent/model"),
    ],
)
def test_the_predictor_container_entry_point_stops_with_one_line(env: dict[str, str], expected: str) -> None:
    """`python -m fraudops_predictor`, as the InferenceService runs it, on a bad setting or a missing model.

    (Importing KServe took 37 s on this 2-core machine under other builds, hence the longer timeout.)
    """
    result = subprocess.run(
        [sys.executable, "-m", "fraudops_predictor", "--http_port", str(_free_port())],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
        env={**os.environ, **env},
    )
    assert_one_line_error(result, expected)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("args", [("simulate", "--fraud-rate", "2"), ("simulate", "--output", "x.xlsx")])
def test_simulate_rejects_bad_option_values(args: tuple[str, ...]) -> None:
    result = run_cli(*args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr


def test_simulate_to_an_unreachable_broker_says_how_to_start_one() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    result = run_cli(
        "simulate",
        "--kafka",
        "--transactions",
        "10",
        env={"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{dead_port}"},
    )
    assert_one_line_error(result, f"127.0.0.1:{dead_port}", "infra up")
