"""`fraudops demo` (what `make demo` runs) end to end, short: every process starts, every record is
decided, the report adds up, the sample request answers, and the run's topic is gone afterwards."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from fraudops.config import Settings
from fraudops_infra.processes import fraudops_command
from fraudops_infra.stack import LocalStack
from tests.conftest import REPO_ROOT
from tests.integration.conftest import free_port
from tests.integration.test_gateway_support import base_env

pytestmark = pytest.mark.integration


def test_the_demo_decides_every_record_it_produces_and_answers_the_sample_request(
    local_stack: LocalStack, stack_settings: Settings, trained_artifact: Path
) -> None:
    env = base_env(
        DB_URL=local_stack.postgres.url,
        MODEL_PATH=str(trained_artifact),
        RUN_DIR=str(stack_settings.run_dir),
        CACHE_DIR=str(stack_settings.cache_dir),
        POSTGRES_PORT=str(stack_settings.postgres_port),
        KAFKA_PORT=str(stack_settings.kafka_port),
        KAFKA_CONTROLLER_PORT=str(stack_settings.kafka_controller_port),
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{stack_settings.kafka_port}",
        KAFKA_HEAP=stack_settings.kafka_heap,
        COLUMNS="120",
    )

    finished = subprocess.run(
        fraudops_command(
            "demo",
            "--rate",
            "400",
            "--duration",
            "10",
            "--gateway-port",
            str(free_port()),
            "--predictor-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
        ),
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )

    output = finished.stdout
    assert finished.returncode == 0, output[-3000:] + finished.stderr[-3000:]
    report = output[output.index("final report") :]
    produced = int(re.search(r"produced\s+([\d,]+)", report)[1].replace(",", ""))  # type: ignore[index]
    stored = int(re.search(r"stored \(decided\)\s+([\d,]+)", report)[1].replace(",", ""))  # type: ignore[index]
    assert produced == stored == 4000
    assert re.search(r"dead-lettered\s+0\b", report)
    assert re.search(r"\ball\s+\d+\s+\d+\s+\d+%", report), "frauds caught and missed, by pattern"
    answer = json.loads(report.rsplit("  → ", 1)[1].strip().splitlines()[0])
    assert 0.0 <= answer["fraud_probability"] <= 1.0 and answer["variant"] == "stable"
    topics = AdminClient({"bootstrap.servers": f"127.0.0.1:{stack_settings.kafka_port}"}).list_topics(
        timeout=10
    )
    assert not [name for name in topics.topics if "-demo-" in name], "the run's topic is deleted"
