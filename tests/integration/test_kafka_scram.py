"""Broker credentials end to end, against the real broker's SASL/SCRAM-SHA-512 listener (as a Strimzi listener
with `authentication: scram-sha-512`): the user is added through the broker's admin API, the simulator
publishes and `fraudops stream consume` stores with its credentials; a wrong password stops the consumer at
once with one line naming the settings, and nothing is stored or committed."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from fraudops.config import Settings
from fraudops.kafka import client_config
from fraudops_infra.stack import LocalStack
from fraudops_simulator import SimulationConfig, simulate
from fraudops_simulator.kafka import publish
from tests.integration.streaming import (
    StreamSetup,
    committed,
    stop,
    stored_count,
    stream_test,
    wait_for_count,
)

pytestmark = pytest.mark.integration

USER = "fraudops-consumer"


@pytest.fixture(scope="module")
def scram_password(local_stack: LocalStack) -> str:
    password = secrets.token_urlsafe(24)
    local_stack.kafka.add_scram_user(USER, password)
    return password


def scram_env(local_stack: LocalStack, password: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": local_stack.kafka.scram_bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": USER,
        "KAFKA_SASL_PASSWORD": password,
    }


@pytest.fixture()
def stream_setup(
    local_stack: LocalStack, scratch_database: str, trained_artifact: Path, tmp_path: Path
) -> Iterator[StreamSetup]:
    """Fresh topics (made on the broker's own listener) and a consumer group for one test."""
    with stream_test(local_stack, scratch_database, trained_artifact, tmp_path, partitions=3) as setup:
        yield setup


def test_the_scram_listener_refuses_a_client_without_credentials(local_stack: LocalStack) -> None:
    """The listener really authenticates: the same request without SASL gets no metadata."""
    anonymous = AdminClient(
        {"bootstrap.servers": local_stack.kafka.scram_bootstrap, "socket.timeout.ms": 3000}
    )
    with pytest.raises(KafkaException, match=r"_TRANSPORT|_TIMED_OUT"):
        anonymous.list_topics(timeout=3)


def test_a_consumer_with_the_right_scram_credentials_stores_what_the_simulator_publishes(
    stream_setup: StreamSetup, local_stack: LocalStack, scram_password: str
) -> None:
    env = scram_env(local_stack, scram_password)
    settings = Settings(**{name.lower(): value for name, value in env.items()})
    tables = simulate(SimulationConfig(transactions=2_000, customers=50, days=20, seed=5))
    report = publish(tables, config=client_config(settings), topic=stream_setup.topic)
    assert (report.failed, report.unflushed) == (0, 0) and report.messages > 1_000

    consumer = stream_setup.consumer("scram", **env)
    try:
        assert wait_for_count(stream_setup.db_url, report.messages, 240, [consumer]) == report.messages
    finally:
        assert stop(consumer) == 0
    assert "SASL authentication error" not in stream_setup.log("scram")


def test_a_wrong_password_stops_the_consumer_at_once_naming_the_setting_and_nothing_is_committed(
    stream_setup: StreamSetup, local_stack: LocalStack, scram_password: str
) -> None:
    wrong = f"not-{scram_password}"
    report = publish(
        simulate(SimulationConfig(transactions=2_000, customers=50, days=20, seed=5)),
        config={"bootstrap.servers": local_stack.kafka.bootstrap},
        topic=stream_setup.topic,
    )
    assert report.messages > 0

    started = time.monotonic()
    consumer = stream_setup.consumer("wrong", **scram_env(local_stack, wrong))
    try:
        code = consumer.wait(timeout=120)
    except subprocess.TimeoutExpired:
        consumer.kill()  # what the consumer did before a refused login stopped it: wait forever
        consumer.wait(timeout=30)
        pytest.fail(f"the consumer kept running with a refused password: {stream_setup.log('wrong')[-2000:]}")
    elapsed = time.monotonic() - started

    log = stream_setup.log("wrong")
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1, log[-3000:]
    assert f"KAFKA_SASL_USERNAME='{USER}'" in errors[0] and "KAFKA_SASL_PASSWORD" in errors[0], errors[0]
    assert scram_password not in log and wrong not in log, "a password was logged"
    assert stored_count(stream_setup.db_url) == 0
    assert all(
        offset < 0
        for offset in committed(stream_setup.bootstrap, stream_setup.group, stream_setup.topic).values()
    )
    assert elapsed < 90, f"took {elapsed:.0f} s to give up (start-up included)"
