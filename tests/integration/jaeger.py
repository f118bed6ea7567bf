"""A real trace store for the tracing tests: Jaeger v2 (built from Go modules by hack/jaeger/build.sh),
in memory, with its OTLP/HTTP receiver and query API on free loopback ports.

Spans reach the store asynchronously (the exporter's and Jaeger's batching), so lookups poll the query
API with a deadline until the expected spans are there.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import REPO_ROOT
from tests.integration.conftest import free_port
from tests.waiting import wait_until

BUILD = REPO_ROOT / "hack" / "jaeger" / "build.sh"
CONFIG = REPO_ROOT / "hack" / "jaeger" / "config.yaml"


@dataclass
class Jaeger:
    otlp_endpoint: str  # for OTEL_EXPORTER_OTLP_ENDPOINT
    query_url: str
    process: subprocess.Popen
    log: Path

    def environment(
        self, service_name: str, sampler: str = "parentbased_always_on", ratio: str | None = None
    ) -> dict[str, str]:
        """The standard OTEL_* variables that make a fraudops process export here."""
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_endpoint,
            "OTEL_SERVICE_NAME": service_name,
            "OTEL_TRACES_SAMPLER": sampler,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        }
        if ratio is not None:
            env["OTEL_TRACES_SAMPLER_ARG"] = ratio
        return env

    def traces(
        self, service: str, tags: dict[str, str] | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        params = {"service": service, "limit": str(limit), "lookback": "1h"}
        if tags:
            params["tags"] = json.dumps(tags)
        response = httpx.get(f"{self.query_url}/api/traces", params=params, timeout=10)
        response.raise_for_status()
        return list(response.json()["data"] or [])

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        response = httpx.get(f"{self.query_url}/api/traces/{trace_id}", timeout=10)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        data = response.json()["data"]
        return data[0] if data else None

    def wait_for(self, find: Callable[[], Any], what: str | Callable[[], str], timeout_s: float = 60) -> Any:
        """Poll `find` until it returns something truthy (then return it), failing after `timeout_s`
        with `what` (or what it returns: the last look, said at the end) and Jaeger's log."""
        return wait_until(
            find,
            timeout_s,
            lambda: f"{what() if callable(what) else what} in Jaeger; jaeger log:\n{self.log_tail()}",
            alive=[self.process],
        )

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]


@contextmanager
def running_jaeger(folder: Path) -> Iterator[Jaeger]:
    build = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, check=False)
    if build.returncode != 0:
        raise AssertionError(f"building Jaeger failed (hack/jaeger/build.sh):\n{build.stderr[-3000:]}")
    binary = build.stdout.strip().splitlines()[-1]
    ports = {
        name: free_port()
        for name in (
            "JAEGER_OTLP_HTTP_PORT",
            "JAEGER_QUERY_PORT",
            "JAEGER_QUERY_GRPC_PORT",
            "JAEGER_HEALTH_PORT",
        )
    }
    log = folder / "jaeger.log"
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [binary, "--config", str(CONFIG)],
            env={k: str(v) for k, v in ports.items()},
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=folder,
        )
    jaeger = Jaeger(
        f"http://127.0.0.1:{ports['JAEGER_OTLP_HTTP_PORT']}",
        f"http://127.0.0.1:{ports['JAEGER_QUERY_PORT']}",
        process,
        log,
    )
    try:

        def healthy() -> bool:
            try:
                return (
                    httpx.get(f"http://127.0.0.1:{ports['JAEGER_HEALTH_PORT']}/status", timeout=2).status_code
                    == 200
                )
            except httpx.HTTPError:
                return False

        wait_until(healthy, 60, lambda: f"a healthy Jaeger:\n{jaeger.log_tail()}", alive=[process])
        yield jaeger
    finally:
        process.terminate()
        process.wait(timeout=30)
