"""Predictor benchmark: rows per second through the real KServe server, V2 binary batches of 1,000 rows.

The feature rows are real (simulated history replayed through the feature engine, missing values
included) and travel as the gateway sends them: one FP32 tensor [1000, F] in the binary tensor
extension, scores back as binary FP32. A few client tasks keep requests in flight (closed loop), so
the server can parse one request while XGBoost scores another on the second core; the clients run
on the same machine.
"""

from __future__ import annotations

import asyncio
import os
import resource
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psutil

from fraudops.inference_protocol import v2_binary_request
from fraudops_bench.results import Measurement
from fraudops_bench.servers import running_server

MODEL_NAME = "card-fraud"


def feature_rows(rows: int, seed: int = 5, entity_table: bool = False) -> np.ndarray:
    """Real feature rows: simulated history replayed through the feature engine (with the entity table:
    the entity-risk features known, as the entity-state component serves them)."""
    from fraudops.features.engine import FeatureEngine
    from fraudops.schema import TRANSACTION_FIELDS
    from fraudops_simulator import SimulationConfig, simulate

    config = SimulationConfig(transactions=rows, seed=seed, customers=max(100, rows // 40), days=30)
    history = pd.concat([table.to_pandas() for table in simulate(config)], ignore_index=True)
    history = history[[c for c in history.columns if c in TRANSACTION_FIELDS]]
    return FeatureEngine(entity_table=entity_table).replay(history)[:rows]


async def _closed_loop(
    url: str,
    bodies: list[tuple[bytes, dict[str, str]]],
    rows_per_request: int,
    concurrency: int,
    duration_s: float,
) -> tuple[list[float], int, int]:
    """Requests in flight from `concurrency` clients for `duration_s`: latencies, rows scored, errors."""
    latencies: list[float] = []
    scored = errors = 0
    deadline = time.perf_counter() + duration_s

    async def client(number: int) -> None:
        nonlocal scored, errors
        async with httpx.AsyncClient(timeout=30) as http:
            index = number
            while time.perf_counter() < deadline:
                content, headers = bodies[index % len(bodies)]
                index += concurrency
                started = time.perf_counter()
                response = await http.post(url, content=content, headers=headers)
                latencies.append(time.perf_counter() - started)
                length = int(response.headers.get("inference-header-content-length", 0))
                if response.status_code != 200 or len(response.content) - length != 4 * rows_per_request:
                    errors += 1
                else:
                    scored += rows_per_request

    await asyncio.gather(*(client(n) for n in range(concurrency)))
    return latencies, scored, errors


@contextmanager
def running_predictor(model_uri: str, log: Path) -> Iterator[tuple[int, psutil.Process]]:
    """`fraudops serve predictor` serving `model_uri` as MODEL_NAME until the block ends (then SIGTERM)."""
    env = {**os.environ, "LOG_LEVEL": "WARNING", "LOG_FORMAT": "json"}
    command = ["predictor", "--model-uri", model_uri, "--name", MODEL_NAME]
    with running_server(command, env, log, "/v2/health/ready") as server:
        yield server


def v2_throughput(
    model_uri: str,
    rows_per_request: int = 1000,
    concurrency: int = 4,
    duration_s: float = 30,
    warmup_s: float = 3,
    entity_features: bool = False,
) -> Measurement:
    """Rows per second through `fraudops serve predictor` (binary V2, `rows_per_request` rows a call);
    `entity_features`: `model_uri` was trained on them, and the rows carry them."""
    rows = feature_rows(rows_per_request * 8, entity_table=entity_features)
    bodies = [
        v2_binary_request(rows[i : i + rows_per_request], binary_scores=True)
        for i in range(0, len(rows), rows_per_request)
    ]
    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory() as folder,
        running_predictor(model_uri, Path(folder) / "predictor.log") as (port, server),
    ):
        url = f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/infer"
        asyncio.run(_closed_loop(url, bodies, rows_per_request, concurrency, warmup_s))
        server_cpu_before = sum(server.cpu_times()[:2])
        own_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        latencies, scored, errors = asyncio.run(
            _closed_loop(url, bodies, rows_per_request, concurrency, duration_s)
        )
        elapsed = time.perf_counter() - started
        server_cpu = sum(server.cpu_times()[:2]) - server_cpu_before
        own_after = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = (own_after.ru_utime + own_after.ru_stime) - (own_before.ru_utime + own_before.ru_stime)
    milliseconds = np.asarray(latencies) * 1000
    return Measurement(
        name="predictor_v2_entity" if entity_features else "predictor_v2",
        description=f"KServe predictor, V2 binary batches of {rows_per_request:,} rows ({rows.shape[1]} FP32 "
        f"features), {concurrency} requests in flight, clients on the same cores",
        numbers={
            "rows_per_second": scored / elapsed,
            "requests_per_second": len(latencies) / elapsed,
            "p50_ms": float(np.percentile(milliseconds, 50)),
            "p95_ms": float(np.percentile(milliseconds, 95)),
            "p99_ms": float(np.percentile(milliseconds, 99)),
            "errors": float(errors),
        },
        units={
            "rows_per_second": "rows/s",
            "requests_per_second": "req/s",
            "p50_ms": "ms",
            "p95_ms": "ms",
            "p99_ms": "ms",
            "errors": "",
        },
        targets={"rows_per_second": ">= 100000", "errors": "<= 0"},
        details={
            "duration_s": round(elapsed, 1),
            "requests": len(latencies),
            "rows_per_request": rows_per_request,
            "concurrency": concurrency,
            "model_uri": model_uri,
            "server_cpu_percent_of_one_core": round(100 * server_cpu / elapsed, 1),
            "client_cpu_percent_of_one_core": round(100 * client_cpu / elapsed, 1),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
    )
