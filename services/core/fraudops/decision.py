"""A decision's shape, defined once: the `Decision` dataclass, and derived from it every other spelling.

    Decision                      the object (gateway answers, alerts)
    DECISION_SCHEMA               its Arrow table (the stream's batches, COPY CSV): one column per field
    DECISION_COLUMNS              the `decisions` table's columns (every field but customer_id)
    ALERT_FIELDS                  an alert: the `fraud-alerts` message and the `alerts` table's columns
    decision_row / alert_row      rows for COPY, in those column orders
    alert_message                 the alert as the JSON the alerts topic carries

A field added to `Decision` appears in all of them; a test of two hand-kept copies has nothing to do.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from operator import attrgetter
from typing import Any

import orjson
import pyarrow as pa


@dataclass(slots=True)
class Decision:
    transaction_id: str
    variant: str
    model_name: str
    model_version: str
    shadow: bool
    score: float
    threshold: float
    is_fraud: bool
    reasons: list[dict[str, Any]]
    latency_ms: float | None
    source: str
    decided_at: datetime
    # The transaction row holds the customer; alerts carry it so a reader needs no join.
    customer_id: str | None = field(default=None, metadata={"decisions_column": False})


def reasons_json(reasons: list[dict[str, Any]] | None) -> str:
    """A decision's reason codes as the JSON text the `reasons` columns hold."""
    return orjson.dumps(reasons).decode() if reasons else "[]"


def _arrow_type(hint: Any) -> pa.DataType:
    """How a field travels in Arrow and COPY CSV: scores as float4 (the columns' type), times and
    reasons as text that PostgreSQL parses (timestamptz, jsonb)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) is list or hint in (str, datetime):
        return pa.string()
    return {bool: pa.bool_(), float: pa.float32()}[hint]


_HINTS = typing.get_type_hints(Decision)
DECISION_SCHEMA = pa.schema([pa.field(f.name, _arrow_type(_HINTS[f.name])) for f in fields(Decision)])
DECISION_COLUMNS: tuple[str, ...] = tuple(
    f.name for f in fields(Decision) if f.metadata.get("decisions_column", True)
)
ALERT_FIELDS = (
    "transaction_id",
    "customer_id",
    "score",
    "threshold",
    "model_name",
    "model_version",
    "variant",
    "reasons",
    "decided_at",
)
#: The alerts table names the decision time for what it is there.
ALERT_COLUMNS = tuple("created_at" if name == "decided_at" else name for name in ALERT_FIELDS)

#: Values of a field as table cells (text for the JSON and time columns); other fields go as they are.
CELL: dict[str, typing.Callable[[Any], str]] = {"reasons": reasons_json, "decided_at": datetime.isoformat}


def _row_maker(names: Sequence[str]) -> typing.Callable[[Decision], tuple[Any, ...]]:
    pick = attrgetter(*names)
    at = names.index("reasons")

    def row(decision: Decision) -> tuple[Any, ...]:
        values = pick(decision)
        return (*values[:at], reasons_json(values[at]), *values[at + 1 :])

    return row


#: A decision as a row of DECISION_COLUMNS; a deciding fraud decision as a row of ALERT_COLUMNS.
decision_row = _row_maker(DECISION_COLUMNS)
alert_row = _row_maker(ALERT_FIELDS)


def decision_from_row(row: Sequence[Any]) -> Decision:
    """A stored decision (a row of DECISION_COLUMNS, as psycopg reads it) as a Decision."""
    return Decision(*row)


def alert_message(decision: Decision) -> bytes:
    """The alert as JSON for the alerts topic (keyed by transaction id; readers dedupe by key)."""
    return orjson.dumps({name: getattr(decision, name) for name in ALERT_FIELDS})


def decisions_table(decisions: Sequence[Decision]) -> pa.Table:
    """Decision objects as an Arrow table of DECISION_SCHEMA."""
    columns = []
    for column in DECISION_SCHEMA:
        cell = CELL.get(column.name)
        values = [getattr(d, column.name) for d in decisions]
        columns.append(pa.array([cell(v) for v in values] if cell else values, column.type))
    return pa.table(columns, schema=DECISION_SCHEMA)
