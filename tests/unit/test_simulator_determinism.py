"""Same seed and parameters, same bytes; a different seed, a different history; CSV carries the same rows."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from fraudops_simulator import SimulationConfig, simulate, write_tables

SMALL = SimulationConfig(transactions=8_000, seed=21, start=date(2026, 3, 1), days=30, rows_per_chunk=2_000)


def write(config: SimulationConfig, path: Path) -> Path:
    write_tables(simulate(config), path)
    return path


def test_same_seed_gives_identical_file(tmp_path: Path) -> None:
    first = write(SMALL, tmp_path / "first.parquet")
    second = write(SMALL, tmp_path / "second.parquet")
    assert first.read_bytes() == second.read_bytes()


def test_different_seed_gives_a_different_history(tmp_path: Path) -> None:
    first = pq.read_table(write(SMALL, tmp_path / "a.parquet")).to_pandas()
    other = dataclasses.replace(SMALL, seed=22)
    second = pq.read_table(write(other, tmp_path / "b.parquet")).to_pandas()
    assert not set(first["transaction_id"]) & set(second["transaction_id"])
    assert first["amount"].sum() != second["amount"].sum()


def test_output_is_ordered_across_chunks(tmp_path: Path) -> None:
    table = pq.read_table(write(SMALL, tmp_path / "chunked.parquet"))
    assert table.num_rows == SMALL.transactions
    assert pq.ParquetFile(tmp_path / "chunked.parquet").num_row_groups > 3
    assert table.column("event_time").to_pandas().is_monotonic_increasing


def test_csv_holds_the_same_rows_as_parquet(tmp_path: Path) -> None:
    parquet = pq.read_table(write(SMALL, tmp_path / "h.parquet")).to_pandas()
    csv = pd.read_csv(write(SMALL, tmp_path / "h.csv"), parse_dates=["event_time", "label_available_at"])
    assert list(csv.columns) == list(parquet.columns)
    assert (csv["transaction_id"] == parquet["transaction_id"]).all()
    assert (csv["event_time"] == parquet["event_time"]).all()
    assert csv["amount"].round(2).equals(parquet["amount"])
    assert (csv["is_fraud"] == parquet["is_fraud"]).all()


def test_an_unknown_file_suffix_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"must end in \.parquet or \.csv"):
        write(SMALL, tmp_path / "history.xlsx")
    assert not list(tmp_path.iterdir())
