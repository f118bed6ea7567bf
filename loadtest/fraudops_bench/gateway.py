"""Gateway benchmark: `/predict` latency at a constant arrival rate, with the load generator on the same cores.

The generator is open loop: request i is due at start + i / rate whatever happened to the ones
before it, and its latency is measured from that due time, so a slow server cannot slow the
generator down and hide its own queueing (no coordinated omission). It is a small asyncio client
over raw keep-alive HTTP/1.1 connections with the requests encoded up front, so it spends a few
tens of microseconds of CPU per request and leaves the cores to the gateway. (Locust's
constant-throughput users are closed loop per user and cost ~1 ms of CPU per request on this
machine: they would measure the generator as much as the gateway. `loadtest/locustfile.py` is
there for the UI.)

The requests are simulated transactions (realistic customers, so the gateway reads and advances
per-customer state) plus 10% legacy payloads, each with a fresh transaction id. The gateway runs
as its own process against a scratch database that is dropped afterwards.
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import socket
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import psutil
import psycopg

from fraudops_bench.results import Measurement
from fraudops_bench.servers import running_server

LEGACY_SHARE = 0.1


# --- the load generator -----------------------------------------------------------------------------


@dataclass
class LoadResult:
    """What an open-loop run saw: latencies from each request's due time, and every failure."""

    latencies_s: np.ndarray
    send_lag_s: np.ndarray  # how late the generator itself sent each request
    statuses: Counter[str]
    duration_s: float
    generator_cpu_s: float
    samples: list[bytes] = field(default_factory=list)  # a few response bodies, for the report

    @property
    def errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != "200")

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q) * 1000) if len(self.latencies_s) else float("nan")


class _Connection:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection(host, port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


def http_request(
    method: str,
    path: str,
    host: str,
    body: bytes = b"",
    content_type: str = "application/json",
    headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def open_loop(
    host: str, port: int, requests: Sequence[bytes], rate_per_s: float, max_connections: int = 256
) -> LoadResult:
    """Send `requests` at a constant rate; each latency counts from the request's due time."""
    idle: list[_Connection] = [await _Connection.open(host, port) for _ in range(8)]
    opened = len(idle)
    latencies = np.full(len(requests), np.nan)
    lags = np.zeros(len(requests))
    statuses: Counter[str] = Counter()
    samples: list[bytes] = []
    connection_ready = asyncio.Condition()

    async def one(index: int, due: float) -> None:
        nonlocal opened
        lags[index] = time.perf_counter() - due
        while idle and idle[-1].reader.at_eof():  # closed by the server while idle (keep-alive timeout)
            idle.pop().close()
            opened -= 1
        if idle:
            connection = idle.pop()
        elif opened < max_connections:
            opened += 1
            connection = await _Connection.open(host, port)
        else:  # every connection busy: wait for one; the wait counts in the latency
            async with connection_ready:
                await connection_ready.wait_for(lambda: bool(idle))
            connection = idle.pop()
        try:
            status, body = await connection.exchange(requests[index])
        except (OSError, asyncio.IncompleteReadError) as exc:
            statuses[type(exc).__name__] += 1
            connection.close()
            opened -= 1
            return
        latencies[index] = time.perf_counter() - due
        statuses[str(status)] += 1
        if len(samples) < 3 or (status != 200 and len(samples) < 10):
            samples.append(body[:500])
        idle.append(connection)
        async with connection_ready:
            connection_ready.notify()

    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    # perf_counter, not loop.time(): uvloop's clock ticks in whole milliseconds
    started = time.perf_counter() + 0.05
    tasks = []
    for index in range(len(requests)):
        due = started + index / rate_per_s
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, due)))
    await asyncio.gather(*tasks)
    duration = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    for connection in idle:
        connection.close()
    answered = latencies[~np.isnan(latencies)]
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    return LoadResult(answered, lags, statuses, duration, cpu, samples)


def run_open_loop(host: str, port: int, requests: Sequence[bytes], rate_per_s: float) -> LoadResult:
    """`open_loop` on uvloop, with the generator's own garbage collector paused.

    A full collection in this process (which holds the whole workload) takes tens of milliseconds
    and would show up as server latency.
    """
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        runner = asyncio.run
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        return runner(open_loop(host, port, requests, rate_per_s))
    finally:
        gc.enable()
        gc.unfreeze()


# --- the workload ----------------------------------------------------------------------------------


def predict_bodies(count: int, seed: int = 21, customers: int = 5_000) -> list[bytes]:
    """Simulated transactions in event-time order (fresh ids), every tenth one as a legacy payload."""
    from fraudops_simulator import SimulationConfig, simulate
    from fraudops_simulator.kafka import encode_records

    generator = np.random.default_rng(seed)
    bodies: list[bytes] = []
    config = SimulationConfig(transactions=count, customers=customers, days=30, seed=seed)
    for table in simulate(config):
        for raw in encode_records(table):
            record = orjson.loads(raw)
            if generator.random() < LEGACY_SHARE:
                hour = int(record["event_time"][11:13])
                bodies.append(
                    orjson.dumps(
                        {
                            "amount": record["amount"],
                            "merchant_category": record["merchant_category"],
                            "source": record["channel"],
                            "is_international": record["is_international"],
                            "hour_of_day": hour,
                        }
                    )
                )
            else:
                record["transaction_id"] = uuid.uuid4().hex
                bodies.append(orjson.dumps(record))
    return bodies[:count]


# --- the gateway under test -------------------------------------------------------------------------


@contextmanager
def scratch_database(db_url: str, prefix: str) -> Iterator[str]:
    """A fresh, migrated database next to `db_url`'s, dropped afterwards."""
    from fraudops.db import migrate

    base, _ = db_url.rsplit("/", 1)
    admin = f"{base}/postgres"
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        url = f"{base}/{name}"
        migrate.upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def settle_database(db_url: str) -> None:
    """Write out what earlier work left in PostgreSQL's buffers (a CHECKPOINT) before measuring.

    Right after the stream benchmark, PostgreSQL spends tens of seconds writing out hundreds of
    megabytes of dirty pages on the same two cores; measured over that, a gateway's p99 shows the
    database's housekeeping, not the gateway.
    """
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    except psycopg.errors.InsufficientPrivilege:
        pass  # not a superuser (or pg_checkpoint): measure as things are


@contextmanager
def running_gateway(
    env: dict[str, str], log: Path, port: int | None = None
) -> Iterator[tuple[int, psutil.Process]]:
    """`fraudops serve gateway` as its own process until the block ends (then SIGTERM, drained)."""
    with running_server(["gateway"], env, log, "/health/ready", port) as server:
        yield server


def gateway_environment(database: str, model_uri: str, **more: str) -> dict[str, str]:
    """The benchmarked gateway's settings: `model_uri` alone (no routing table), quiet JSON logs, and a
    rate limit no load generator reaches."""
    env = {key: value for key, value in os.environ.items() if key != "ROUTING_TABLE_PATH"}
    env.update(
        DB_URL=database,
        MODEL_PATH=model_uri,
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
        GATEWAY_RATE_LIMIT="1000000/second",
        **more,
    )
    return env


@dataclass(frozen=True)
class EntityTableLane:
    """A database holding the entity table the entity-state component published for `topic`."""

    database: str
    topic: str


def predict_latency(
    db_url: str,
    model_uri: str,
    rate_per_s: float = 500,
    duration_s: float = 60,
    warmup_s: float = 5,
    log: Path | None = None,
    entity_table: EntityTableLane | None = None,
) -> Measurement:
    """`/predict` at `rate_per_s` for `duration_s` (after `warmup_s` at the same rate, not counted).

    The gateway's log goes to `log` when given (kept for inspection), else to a scratch folder. With
    `entity_table`, the gateway runs in that database with ENTITY_TABLE=true (`model_uri` was trained
    on the entity features): each request reads its entities' rows from the mirror of the published table.
    """
    total = int(rate_per_s * (duration_s + warmup_s))
    bodies = predict_bodies(total)
    settle_database(db_url)
    load_before = os.getloadavg()
    scratch = (
        scratch_database(db_url, "bench_gateway")
        if entity_table is None
        else nullcontext(entity_table.database)
    )
    with tempfile.TemporaryDirectory() as folder, scratch as database:
        more = (
            {} if entity_table is None else {"ENTITY_TABLE": "true", "TRANSACTIONS_TOPIC": entity_table.topic}
        )
        env = gateway_environment(database, model_uri, **more)
        with running_gateway(env, log or Path(folder) / "gateway.log") as (port, process):
            host = f"127.0.0.1:{port}"
            requests = [http_request("POST", "/predict", host, body) for body in bodies]
            warm = int(rate_per_s * warmup_s)
            run_open_loop("127.0.0.1", port, requests[:warm], rate_per_s)
            cpu_before = sum(process.cpu_times()[:2])
            psutil.cpu_percent(percpu=True)
            result = run_open_loop("127.0.0.1", port, requests[warm:], rate_per_s)
            machine_cpu = psutil.cpu_percent(percpu=True)
            gateway_cpu = sum(process.cpu_times()[:2]) - cpu_before
        with psycopg.connect(database) as conn:
            stored = conn.execute("SELECT count(*) FROM decisions WHERE NOT shadow").fetchone()[0]
    load_after = os.getloadavg()
    answered = len(result.latencies_s)
    return Measurement(
        name="gateway_predict" if entity_table is None else "gateway_predict_entity",
        description=f"gateway POST /predict, open loop at {rate_per_s:g} requests/s for {duration_s:g} s "
        "(90% full transactions, 10% legacy; generator on the same cores; latency from each "
        "request's due time)"
        + ("; with the entity features, read from the published entity table" if entity_table else ""),
        numbers={
            "p50_ms": result.percentile_ms(50),
            "p95_ms": result.percentile_ms(95),
            "p99_ms": result.percentile_ms(99),
            "p99_9_ms": result.percentile_ms(99.9),
            "max_ms": float(result.latencies_s.max() * 1000) if answered else 0.0,
            "requests_per_second": answered / result.duration_s,
            "errors": float(result.errors),
        },
        units={
            "p50_ms": "ms",
            "p95_ms": "ms",
            "p99_ms": "ms",
            "p99_9_ms": "ms",
            "max_ms": "ms",
            "requests_per_second": "req/s",
            "errors": "",
        },
        targets={"p99_ms": "<= 10", "errors": "<= 0", "requests_per_second": f">= {rate_per_s * 0.99:g}"},
        details={
            "requests": len(requests) - warm,
            "answered": answered,
            "statuses": dict(result.statuses),
            "stored_decisions_including_warmup": stored,
            "generator_send_lag_p99_ms": round(float(np.percentile(result.send_lag_s, 99) * 1000), 3),
            "gateway_cpu_percent_of_one_core": round(100 * gateway_cpu / result.duration_s, 1),
            "generator_cpu_percent_of_one_core": round(100 * result.generator_cpu_s / result.duration_s, 1),
            "machine_cpu_percent_per_core_during_run": machine_cpu,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
            "warmup_s": warmup_s,
            "sample_responses": [s.decode(errors="replace") for s in result.samples[:2]],
        },
    )
