"""Simulator benchmarks: transactions per second to a Parquet file, and messages per second to Kafka."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from fraudops.config import Settings
from fraudops.kafka import client_config
from fraudops_bench.results import Measurement
from fraudops_simulator import SimulationConfig, simulate, write_tables
from fraudops_simulator.kafka import PRODUCER_DEFAULTS, check_broker, publish


def to_file(transactions: int = 1_000_000) -> Measurement:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.parquet"
        started = time.perf_counter()
        rows = write_tables(simulate(SimulationConfig(transactions=transactions)), path)
        seconds = time.perf_counter() - started
        size_mb = path.stat().st_size / 2**20
    return Measurement(
        name="simulate_to_file",
        description=f"`fraudops simulate --transactions {transactions:,} --output x.parquet` (generation + write)",
        numbers={"transactions_per_second": rows / seconds, "seconds": seconds},
        units={"transactions_per_second": "tx/s", "seconds": "s"},
        targets={"transactions_per_second": ">= 50000"},
        details={"transactions": rows, "file_mb": round(size_mb, 1)},
    )


def to_kafka(settings: Settings, transactions: int = 500_000) -> Measurement:
    config = client_config(settings, **PRODUCER_DEFAULTS)
    check_broker(config, settings.transactions_topic)
    report = publish(
        simulate(SimulationConfig(transactions=transactions, seed=3)),
        config=config,
        topic=settings.transactions_topic,
    )
    if report.failed or report.unflushed:
        raise RuntimeError(
            f"{report.failed} messages failed, {report.unflushed} unflushed: {report.first_error}"
        )
    return Measurement(
        name="simulate_to_kafka",
        description=f"`fraudops simulate --kafka` of {transactions:,} transactions, unthrottled, to the local "
        "single-node broker (lz4, acks=all, idempotent; includes generation and JSON encoding)",
        numbers={"messages_per_second": report.messages_per_second, "seconds": report.seconds},
        units={"messages_per_second": "msg/s", "seconds": "s"},
        targets={"messages_per_second": ">= 20000"},
        details={"messages": report.messages},
    )
