"""Support for the serving tests (no tests here): the real predictor and gateway as processes on loopback.

Each server runs as `python -m fraudops_cli.main serve …`, exactly as an operator starts it, on a
free port, logging to a file the failure message quotes. Stopping sends SIGTERM and waits for a
clean exit, so every test also checks that the server shuts down gracefully.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml

from fraudops.db import migrate
from fraudops_infra.stack import LocalStack
from tests.conftest import REPO_ROOT
from tests.integration.conftest import free_port
from tests.waiting import wait_until

MODEL_NAME = "card-fraud"


@dataclass
class Served:
    """A running server: where it answers, its process and its log."""

    url: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, characters: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-characters:]

    def stop(self, timeout_s: float = 60) -> bool:
        """SIGTERM, then wait: the server drains and exits by itself. True when it exited cleanly.

        uvicorn re-raises the signal once its graceful shutdown is complete, so "cleanly" is an exit
        by SIGTERM (or 0) after the shutdown finished.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(
                f"server did not stop within {timeout_s} s after SIGTERM:\n{self.log_tail()}"
            ) from None
        return code in (0, -signal.SIGTERM)


#: A server that has not answered by then is broken, not slow: a KServe predictor's imports alone take
#: over two minutes when the two shared cores run at a load average of 20.
READY_TIMEOUT_S = 300


def wait_until_ready(served: Served, path: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    def ready() -> bool:
        try:
            return httpx.get(served.url + path, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(
        ready,
        timeout_s,
        lambda: f"{served.url}{path} to be ready:\n{served.log_tail()}",
        interval_s=0.2,
        alive=[served.process],
    )


def wait_for_readiness(client: httpx.Client, status: int, timeout_s: float = 30) -> httpx.Response:
    """Until /health/ready answers `status` (it reports what the gateway's background reads last found)."""
    seen = ""

    def answered() -> httpx.Response | None:
        nonlocal seen
        response = client.get("/health/ready")
        seen = f"{response.status_code}: {response.text}"
        return response if response.status_code == status else None

    return wait_until(
        answered, timeout_s, lambda: f"/health/ready to answer {status} (still {seen})", interval_s=0.1
    )


@contextmanager
def serving(command: list[str], env: dict[str, str], log: Path, ready_path: str) -> Iterator[Served]:
    """`fraudops serve <command…> --port <free port>` until the block ends."""
    with serving_argv(
        ["-m", "fraudops_cli.main", "serve", *command, "--port"], env, log, ready_path
    ) as served:
        yield served


@contextmanager
def serving_argv(argv: list[str], env: dict[str, str], log: Path, ready_path: str) -> Iterator[Served]:
    """`python <argv…> <free port>` until the block ends."""
    port = free_port()
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [sys.executable, *argv, str(port)],
            env=env,
            cwd=REPO_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_until_ready(served, ready_path)
        yield served
    finally:
        if process.poll() is None:
            served.stop()


def base_env(**overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GATEWAY_", "ROUTING_", "FRAUD_THRESHOLD", "DB_URL", "MODEL_PATH"))
    }
    env.update({"LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}, **overrides)
    return env


@contextmanager
def predictor(artifact: Path, log: Path) -> Iterator[Served]:
    """The KServe model server for `artifact` (V1 + V2 REST) until the block ends."""
    with serving(
        ["predictor", "--model-uri", str(artifact), "--name", MODEL_NAME], base_env(), log, "/v2/health/ready"
    ) as served:
        yield served


@contextmanager
def gateway(db_url: str, artifact: Path, log: Path, **settings: str) -> Iterator[Served]:
    """`fraudops serve gateway` against `db_url`, with extra settings as environment variables."""
    env = base_env(DB_URL=db_url, MODEL_PATH=str(artifact), **{k.upper(): v for k, v in settings.items()})
    with serving(["gateway"], env, log, "/health/live") as served:
        yield served


@contextmanager
def fastapi_only_gateway(db_url: str, artifact: Path, log: Path) -> Iterator[Served]:
    """The FastAPI app alone (`create_app`: no fast path, no guards) on uvicorn, in a process of its own.

    Its own process: the gateway and the stream consumer both define `fraudops_decisions_total`, so
    the gateway's modules are never imported into the test process, which also imports the consumer.
    """
    script = (
        "import sys, uvicorn; from fraudops_gateway.app import create_app; "
        "uvicorn.run(create_app(), host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')"
    )
    env = base_env(DB_URL=db_url, MODEL_PATH=str(artifact))
    with serving_argv(["-c", script], env, log, "/health/live") as served:
        yield served


@contextmanager
def migrated_database(stack: LocalStack, name: str) -> Iterator[str]:
    """A fresh database with the fraudops schema, dropped afterwards."""
    admin_url = stack.postgres.url.rsplit("/", 1)[0] + "/postgres"
    database = f"{name}_{os.getpid()}_{free_port()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    url = admin_url.rsplit("/", 1)[0] + f"/{database}"
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def variant(
    name: str,
    artifact: Path | None = None,
    endpoint: str | None = None,
    weight: float = 100,
    mode: str = "serve",
) -> dict[str, Any]:
    """One variant of a routing table, scoring in-process (`artifact`) or remotely (`endpoint`)."""
    spec: dict[str, Any] = {"name": name, "model_version": "test-v1", "weight": weight, "mode": mode}
    if artifact is not None:
        spec["model_uri"] = str(artifact)
    if endpoint is not None:
        spec["endpoint"] = endpoint
    return spec


def stable_routing_table(folder: Path, artifact: Path) -> Path:
    """`<folder>/routing.yaml`: one variant, stable, deciding everything with `artifact`."""
    path = folder / "routing.yaml"
    write_routing_table(path, [variant("stable", artifact)])
    return path


def write_routing_table(path: Path, variants: list[dict[str, Any]], salt: str = "tests") -> None:
    """Write the table the way the operator does: a whole new file swapped in."""
    staged = path.with_suffix(".next")
    staged.write_text(yaml.safe_dump({"model_name": MODEL_NAME, "salt": salt, "variants": variants}))
    staged.replace(path)


def wait_for_routing(url: str, summary: str, timeout_s: float = 30) -> None:
    """Until /health/ready reports `summary` as the live routing table."""
    live = None

    def summary_live() -> bool:
        nonlocal live
        live = httpx.get(url + "/health/ready", timeout=5).json()["checks"].get("routing")
        return live == summary

    wait_until(
        summary_live,
        timeout_s,
        lambda: f"routing table {summary!r} to be live (live: {live!r})",
        interval_s=0.2,
    )


def stored_rows(db_url: str, query: str, *params: Any) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(query, params).fetchall()


def wait_until_stored(db_url: str, transaction_ids: list[str], timeout_s: float = 30) -> None:
    """Until every one of these transactions has its deciding decision in PostgreSQL."""
    missing: set[str] = set(transaction_ids)

    def all_stored() -> bool:
        found = stored_rows(
            db_url,
            "SELECT transaction_id FROM decisions WHERE NOT shadow AND transaction_id = ANY(%s)",
            list(missing),
        )
        missing.difference_update(row[0] for row in found)
        return not missing

    wait_until(
        all_stored,
        timeout_s,
        lambda: f"{len(missing)} more decisions to be stored, e.g. {sorted(missing)[:3]}",
        interval_s=0.1,
    )
