"""Bad input, generated: schemathesis against the running gateway's own OpenAPI document.

Its examples, coverage and fuzzing phases send documented, edge-case and schema-violating requests
to every operation, and every check runs: no request may get a 5xx, every schema-valid request is
accepted (the document states every rule the server enforces) and every schema-violating one is
refused, and statuses, content types and bodies conform. The API's own `event-time` format is
given to schemathesis as a generator (schemathesis_hooks.py), as its documentation says to. A
gateway serving a model with extra inputs documents them (their kinds in the `extras` object) and
goes through the same run on its decision endpoints.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fraudops_infra.stack import LocalStack
from tests.conftest import REPO_ROOT
from tests.integration.test_gateway_support import Served, gateway, migrated_database

pytestmark = pytest.mark.integration
MAX_EXAMPLES = 50


@contextmanager
def fuzzed_gateway(stack: LocalStack, artifact: Path, folder: Path, database_name: str) -> Iterator[Served]:
    """The gateway serving `artifact` on a database of its own; it must stop cleanly afterwards."""
    with (
        migrated_database(stack, database_name) as database,
        gateway(database, artifact, folder / "gateway.log") as server,
    ):
        yield server
        assert server.stop(), server.log_tail()


@pytest.fixture(scope="module")
def served(
    local_stack: LocalStack, trained_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    with fuzzed_gateway(
        local_stack, trained_artifact, tmp_path_factory.mktemp("schemathesis"), "fuzz"
    ) as server:
        yield server


@pytest.fixture(scope="module")
def served_with_extra_inputs(
    local_stack: LocalStack, extras_trained_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("schemathesis-extras")
    with fuzzed_gateway(local_stack, extras_trained_artifact, folder, "fuzz_extras") as server:
        yield server


def schemathesis_run(url: str, folder: Path, *options: str) -> str:
    """schemathesis against the gateway at `url` (every check, every phase); its output when it found nothing."""
    hooks = {
        "SCHEMATHESIS_HOOKS": "tests.integration.schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{url}/openapi.json",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing",
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
            str(folder),
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=folder,  # its cache stays out of the repo
        env={**os.environ, **hooks},
    )

    assert run.returncode == 0, f"schemathesis found problems:\n{run.stdout[-8000:]}\n{run.stderr[-2000:]}"
    assert "No issues found" in run.stdout, run.stdout[-4000:]
    return run.stdout


def operations_tested(output: str) -> str:
    return next(line for line in output.splitlines() if "Tested:" in line).split()[-1]


def test_schemathesis_finds_no_server_error_and_no_schema_violation(served: Served, tmp_path: Path) -> None:
    output = schemathesis_run(served.url, tmp_path)

    assert operations_tested(output) == "7", f"every operation was tested: {output[-2000:]}"


def test_schemathesis_finds_nothing_in_the_extra_fields_a_served_model_reads(
    served_with_extra_inputs: Served, tmp_path: Path
) -> None:
    document = httpx.get(served_with_extra_inputs.url + "/openapi.json").json()
    extras = document["components"]["schemas"]["TransactionRequest"]["properties"]["extras"]
    assert set(extras["anyOf"][0]["properties"]) == {"customer_age", "mcc"}, (
        "the run fuzzes the declared fields"
    )

    output = schemathesis_run(served_with_extra_inputs.url, tmp_path, "--include-path-regex", "^/predict")

    assert operations_tested(output) == "2", f"both decision endpoints were tested: {output[-2000:]}"


def test_nothing_the_fuzzer_got_answered_for_was_refused_by_postgresql(served: Served) -> None:
    """Every decision the gateway answered during the run could be stored (nothing answered is lost)."""
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(served.url + "/metrics").text)}

    refused = sum(
        s.value for s in families["fraudops_gateway_persist_failed"].samples if s.name.endswith("_total")
    )
    assert refused == 0, served.log_tail()
    assert '"level": "ERROR"' not in served.log.read_text(), served.log_tail()
