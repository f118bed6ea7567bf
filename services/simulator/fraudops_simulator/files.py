"""Writing a simulation to Parquet or CSV, chunk by chunk, while the next chunk is generated.

Parquet and CSV writing release the GIL, so one writer thread overlaps disk work with generation
on the second core. The file appears under its name only when complete (written to a temporary
name in the same folder, then renamed).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fraudops_simulator.arrow import SCHEMA

#: File formats by suffix.
FORMATS = {".parquet": "parquet", ".csv": "csv"}


def file_format(path: Path) -> str:
    """The format a path asks for; ValueError says which suffixes are allowed."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot write {path.name!r}: the output must end in {' or '.join(FORMATS)}")
    return fmt


def write_tables(
    tables: Iterable[pa.Table], path: Path, on_written: Callable[[pa.Table], None] | None = None
) -> int:
    """Write every table to `path` (.parquet or .csv); returns the row count."""
    fmt = file_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    writer: pq.ParquetWriter | pacsv.CSVWriter
    if fmt == "parquet":
        # snappy: fast to write and read; dictionary encoding does most of the size work on ids
        writer = pq.ParquetWriter(partial, SCHEMA, compression="snappy")
    else:
        writer = pacsv.CSVWriter(partial, SCHEMA)
    rows = 0
    pending: Future[None] | None = None
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="simulate-writer") as pool:
            for table in tables:
                if pending is not None:
                    pending.result()  # at most one table in flight: memory stays bounded
                pending = pool.submit(writer.write_table, table)
                rows += table.num_rows
                if on_written is not None:
                    on_written(table)
            if pending is not None:
                pending.result()
        writer.close()
        os.replace(partial, path)
    finally:
        if partial.exists():
            writer.close()
            partial.unlink()
    return rows
