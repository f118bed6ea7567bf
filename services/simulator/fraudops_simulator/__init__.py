"""The transaction simulator: realistic customers, legit traffic and named fraud patterns, labelled.

    config = SimulationConfig(transactions=1_000_000, seed=7)
    for table in simulate(config):          # Arrow tables in event-time order
        ...
    write_tables(simulate(config), Path("history.parquet"))

Pattern signatures and their legit look-alikes: README.md beside this file. The names below are
imported on first use, so `fraudops_simulator.names` stays cheap for the CLI's start-up.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fraudops_simulator.arrow import SCHEMA
    from fraudops_simulator.engine import RunPlan, plan_run, simulate
    from fraudops_simulator.files import file_format, write_tables
    from fraudops_simulator.names import PATTERN_NAMES
    from fraudops_simulator.params import SimulationConfig, SimulationParameterError

_WHERE = {
    "PATTERN_NAMES": "fraudops_simulator.names",
    "SCHEMA": "fraudops_simulator.arrow",
    "RunPlan": "fraudops_simulator.engine",
    "SimulationConfig": "fraudops_simulator.params",
    "SimulationParameterError": "fraudops_simulator.params",
    "file_format": "fraudops_simulator.files",
    "plan_run": "fraudops_simulator.engine",
    "simulate": "fraudops_simulator.engine",
    "write_tables": "fraudops_simulator.files",
}
__all__ = [
    "PATTERN_NAMES",
    "SCHEMA",
    "RunPlan",
    "SimulationConfig",
    "SimulationParameterError",
    "file_format",
    "plan_run",
    "simulate",
    "write_tables",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'fraudops_simulator' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
