"""Bad input, generated: schemathesis against the running gateway's own OpenAPI document.

Its examples, coverage and fuzzing phases send documented, edge-case and schema-violating requests
to every operation. Every check runs except `positive_data_acceptance`: the API enforces time
rules JSON Schema cannot state (an event time at most a day ahead of now, nothing before 1970),
so a schema-valid request may rightly get 422. `negative_data_rejection` (schema-invalid input is
refused) and the conformance checks (status codes, content types, response bodies) do run, and
no request may get a 5xx.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fraudops_infra.stack import LocalStack
from tests.integration.test_gateway_support import Served, gateway, migrated_database

pytestmark = pytest.mark.integration
MAX_EXAMPLES = 50


@pytest.fixture(scope="module")
def served(
    local_stack: LocalStack, trained_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("schemathesis")
    with (
        migrated_database(local_stack, "fuzz") as database,
        gateway(database, trained_artifact, folder / "gateway.log") as server,
    ):
        yield server
        assert server.stop(), server.log_tail()


def test_schemathesis_finds_no_server_error_and_no_schema_violation(served: Served, tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{served.url}/openapi.json",
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "20261129",
            "--no-color",
            "--generation-database",
            "none",
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )  # its cache stays out of the repo

    assert run.returncode == 0, f"schemathesis found problems:\n{run.stdout[-8000:]}\n{run.stderr[-2000:]}"
    assert "No issues found" in run.stdout, run.stdout[-4000:]
    tested = next(line for line in run.stdout.splitlines() if "Tested:" in line)
    assert tested.split()[-1] == "7", f"every operation was tested: {tested}"


def test_nothing_the_fuzzer_got_answered_for_was_refused_by_postgresql(served: Served) -> None:
    """Every decision the gateway answered during the run could be stored (nothing answered is lost)."""
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(served.url + "/metrics").text)}

    refused = sum(
        s.value for s in families["fraudops_gateway_persist_failed"].samples if s.name.endswith("_total")
    )
    assert refused == 0, served.log_tail()
    assert '"level": "ERROR"' not in served.log.read_text(), served.log_tail()
