"""Robust-loading benchmark: `fraudops train` on a ten-million-row five-column CSV within the 8 GiB budget.

The CSV is what a bank exports: five renamed columns (time, customer, terminal, amount, label), no
transaction id, written chunk by chunk from the simulator. The training runs as a child process
with a small tuning budget (this measures loading, replay and memory, not tuning) while its peak
RSS is sampled.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pyarrow.csv as pv

from fraudops_bench.results import Measurement
from fraudops_bench.training import run_train
from fraudops_simulator import SimulationConfig, simulate

FIVE_COLUMNS = {
    "event_time": "TX_DATETIME",
    "customer_id": "CUSTOMER_ID",
    "terminal_id": "TERMINAL_ID",
    "amount": "TX_AMOUNT",
    "is_fraud": "TX_FRAUD",
}


def write_five_column_csv(path: Path, transactions: int, seed: int = 42) -> int:
    config = SimulationConfig(transactions=transactions, customers=transactions // 100, days=180, seed=seed)
    rows = 0
    schema = None
    writer = None
    try:
        for table in simulate(config):
            five = table.select(list(FIVE_COLUMNS)).rename_columns(list(FIVE_COLUMNS.values()))
            if writer is None:
                schema = five.schema
                writer = pv.CSVWriter(path, schema)
            writer.write_table(five.cast(schema))
            rows += five.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def train_ten_million(transactions: int = 10_000_000, trials: int = 2, timeout_s: int = 600) -> Measurement:
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "export.csv"
        started = time.monotonic()
        rows = write_five_column_csv(data, transactions)
        written_s = time.monotonic() - started
        mapping = ",".join(f"{ours}={theirs}" for ours, theirs in FIVE_COLUMNS.items())
        run = run_train(data, Path(folder), trials, timeout_s, "--columns", mapping)
        seconds, peak, result = run.seconds, run.peak_rss_bytes, run.result
        size_gib = data.stat().st_size / 2**30
    return Measurement(
        name="training_10m_csv",
        description=f"`fraudops train` on a {rows:,}-row five-column CSV ({size_gib:.2f} GiB, no transaction id), "
        f"{trials} Optuna trials: loading, replay, baselines and report within the memory budget",
        numbers={
            "rows": float(rows),
            "minutes": seconds / 60,
            "peak_rss_gib": peak / 2**30,
            "model_average_precision": result["metrics"]["average_precision"],
        },
        units={"rows": "", "minutes": "min", "peak_rss_gib": "GiB", "model_average_precision": ""},
        targets={"rows": f">= {transactions}", "peak_rss_gib": "<= 8"},
        details={"csv_write_seconds": written_s, "csv_gib": size_gib},
    )
