"""Real PostgreSQL and a real Kafka broker for the integration tests, started once per session.

They run on free loopback ports under `.run/test-stack-<pid>` so that a developer's own
`fraudops infra up` stack is never touched, and they are stopped (and their data removed)
when the session ends. If they cannot start, the tests fail with the reason — they never skip.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator

import psycopg
import pytest

from fraudops.config import Settings
from fraudops_infra.stack import LocalStack
from tests.conftest import REPO_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    run_dir = REPO_ROOT / ".run" / f"test-stack-{os.getpid()}"
    shutil.rmtree(run_dir, ignore_errors=True)
    return Settings(
        run_dir=run_dir,
        cache_dir=REPO_ROOT / ".cache",
        postgres_port=free_port(),
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_scram_port=free_port(),  # a SASL/SCRAM-SHA-512 listener too (tests/integration/test_kafka_scram.py)
        kafka_heap="512M",
    )


@pytest.fixture(scope="session")
def local_stack(stack_settings: Settings) -> Iterator[LocalStack]:
    stack = LocalStack(stack_settings)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()
        shutil.rmtree(stack_settings.run_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def database(local_stack: LocalStack, request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated database of the test module's own (named after it), dropped after its last test."""
    from tests.integration.test_gateway_support import migrated_database  # which imports this module

    with migrated_database(local_stack, request.module.__name__.rsplit(".test_", 1)[-1]) as url:
        yield url


@pytest.fixture(scope="session")
def db_url(local_stack: LocalStack) -> str:
    return local_stack.postgres.url


@pytest.fixture(scope="session")
def kafka_bootstrap(local_stack: LocalStack) -> str:
    return local_stack.kafka.bootstrap


@pytest.fixture()
def scratch_database(local_stack: LocalStack) -> Iterator[str]:
    """A fresh, empty database for one test (dropped afterwards)."""
    name = f"scratch_{os.getpid()}_{free_port()}"
    admin_url = local_stack.postgres.url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
