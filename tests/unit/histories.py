"""Support for the unit tests (no tests here): a simulated history as a frame and as Kafka record values."""

from __future__ import annotations

import pandas as pd

from fraudops_simulator import SimulationConfig, simulate
from fraudops_simulator.kafka import encode_records as to_json


def history_and_values(config: SimulationConfig) -> tuple[pd.DataFrame, list[bytes]]:
    """The history in event-time order, and each transaction's JSON record value in the same order."""
    tables = list(simulate(config))
    frame = pd.concat([table.to_pandas() for table in tables], ignore_index=True)
    frame = frame.sort_values(["event_time", "transaction_id"], kind="stable").reset_index(drop=True)
    values = {}
    for table in tables:
        for transaction_id, value in zip(
            table.column("transaction_id").to_pylist(), to_json(table), strict=True
        ):
            values[transaction_id] = value
    return frame, [values[t] for t in frame["transaction_id"]]
