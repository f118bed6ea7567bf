"""Entity-state benchmark: the entity table's own throughput and memory with 1,000,000 entities.

Transactions with five entity keys each (merchant, terminal, device, IP, beneficiary) drawn so that
about a million distinct entities exist, a few hot ones (big merchants) and a long tail (devices,
IPs), arriving in event-time order at 2,000 a second of simulated time: the component's loop
(`EntityTable.ingest`: queue, close epochs, apply) in batches of 10,000, then a snapshot and a restore.
"""

from __future__ import annotations

import time

import numpy as np
import psutil

from fraudops.features.entities import EntityTable
from fraudops.features.spec import FeatureConfig
from fraudops_bench.results import Measurement


def entity_table(
    transactions: int = 3_000_000, entities: int = 1_000_000, batch: int = 10_000, seed: int = 5
) -> Measurement:
    rng = np.random.default_rng(seed)
    config = FeatureConfig()
    # per table: how many distinct keys, and how skewed (Zipf-like exponent of the draw)
    per_table = np.asarray([0.05, 0.1, 0.35, 0.4, 0.1]) * entities
    times = 1.7e9 + np.cumsum(rng.exponential(1 / 2000.0, transactions))
    keys = np.empty((transactions, 5), dtype=np.int64)
    for table, distinct in enumerate(per_table):
        ranks = np.minimum(
            (rng.pareto(1.2, transactions) * distinct / 20).astype(np.int64), int(distinct) - 1
        )
        # every key appears at least once: the first `distinct` rows take each key in turn
        ranks[: int(distinct)] = rng.permutation(int(distinct))[: min(int(distinct), transactions)]
        keys[:, table] = ranks * 7919 + table + 1
    without = rng.random(transactions) < 0.8  # most transactions have no beneficiary...
    without[: int(per_table[4])] = False  # ...but every beneficiary appears once
    keys[without, 4] = 0
    customers = rng.integers(1, 2**62, transactions)
    process = psutil.Process()
    at_start = process.memory_info().rss
    # Compiles the kernels outside the clock and outside the table's memory: the JIT's code and LLVM's
    # memory are a fixed cost of the process, not of the entities.
    EntityTable().ingest(times[:batch], keys[:batch], customers[:batch], config)
    before = process.memory_info().rss
    table = EntityTable()
    started = time.perf_counter()
    for start in range(0, transactions, batch):
        table.ingest(
            times[start : start + batch],
            keys[start : start + batch],
            customers[start : start + batch],
            config,
        )
    seconds = time.perf_counter() - started
    rss = process.memory_info().rss
    t0 = time.perf_counter()
    snapshot = table.arrays()
    restored = EntityTable.from_arrays(snapshot)
    restore_s = time.perf_counter() - t0
    if len(restored) != len(table):
        raise AssertionError("the restored table lost entities")
    return Measurement(
        name="entity_table",
        description=f"entity table: {transactions:,} transactions over {len(table):,} entities in batches of "
        f"{batch:,} (queue, epoch close, apply), then a snapshot and a restore",
        numbers={
            "transactions_per_second": transactions / seconds,
            "entities": float(len(table)),
            "table_rss_mib": (rss - before) / 2**20,
            "bytes_per_entity": (rss - before) / len(table),
            "snapshot_restore_seconds": restore_s,
        },
        units={
            "transactions_per_second": "tx/s",
            "entities": "",
            "table_rss_mib": "MiB",
            "bytes_per_entity": "B",
            "snapshot_restore_seconds": "s",
        },
        targets={"transactions_per_second": ">= 20000", "entities": ">= 1000000", "table_rss_mib": "<= 600"},
        details={
            "array_bytes": table.memory_bytes(),
            "compiled_kernels_rss_mib": round((before - at_start) / 2**20, 1),
            "epoch_s": config.entity_epoch_s,
        },
    )
