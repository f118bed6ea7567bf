"""Load a labelled transaction history from CSV or Parquet, map its columns, and check it is trainable.

Only four columns are required (a timestamp, an entity id, an amount, a 0/1 fraud label); every
other Transaction field is used when present. Unusable rows are dropped and reported, within a limit. Feature families whose inputs are missing are
listed in the report as skipped, with the columns they would need.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq

from fraudops.errors import RejectedInputError
from fraudops.schema import TRANSACTION_FIELDS

REQUIRED = ("event_time", "customer_id", "amount", "is_fraud")
OPTIONAL_LABEL_COLUMNS = ("fraud_pattern", "label_available_at")
MIN_FRAUDS = 50

#: Feature families that need source columns beyond the required ones.
FAMILY_INPUTS: dict[str, tuple[str, ...]] = {
    "novelty: merchants": ("merchant_id",),
    "novelty: devices": ("device_id",),
    "novelty: IP addresses": ("ip_address",),
    "novelty: countries": ("country",),
    "transfers: beneficiaries and payers": ("beneficiary_id", "transaction_type"),
    "geography: distance and speed": ("latitude", "longitude"),
    "channel": ("channel",),
    "transaction type": ("transaction_type",),
    "merchant category": ("merchant_category",),
    "international use": ("is_international",),
    "card testing: declines": ("auth_result",),
    "account: age and credential changes": ("account_opened_at", "credential_change_at"),
    "label risk: terminals": ("terminal_id",),
}


@dataclass
class DroppedRows:
    """Rows left out for one reason: how many, and the first few as they were in the source."""

    reason: str
    count: int
    examples: list[str]

    def describe(self) -> str:
        return f"{self.count:,} row(s) {self.reason} (first: {'; '.join(self.examples)})"


@dataclass
class DataReport:
    """What the loaded history holds, for the training report."""

    source: str
    rows: int
    frauds: int
    start: pd.Timestamp
    end: pd.Timestamp
    columns_used: list[str]
    skipped_families: dict[str, str] = field(default_factory=dict)
    fingerprint: str = ""
    dropped: list[DroppedRows] = field(default_factory=list)
    rows_read: int = 0

    @property
    def fraud_rate(self) -> float:
        return self.frauds / self.rows if self.rows else 0.0


def parse_column_mapping(text: str | None) -> dict[str, str]:
    """`event_time=ts,customer_id=cust` → {'ts': 'event_time', 'cust': 'customer_id'} (source → ours)."""
    if not text:
        return {}
    mapping: dict[str, str] = {}
    allowed = set(TRANSACTION_FIELDS) | {"is_fraud", *OPTIONAL_LABEL_COLUMNS}
    for part in text.split(","):
        if "=" not in part:
            raise RejectedInputError(
                "--columns", f"{part!r} is not of the form ours=theirs (e.g. amount=amt)"
            )
        ours, theirs = (piece.strip() for piece in part.split("=", 1))
        if ours not in allowed:
            raise RejectedInputError(
                "--columns", f"unknown field {ours!r}; known fields: {', '.join(sorted(allowed))}"
            )
        mapping[theirs] = ours
    return mapping


#: Up to this share of the rows may be unusable (dropped, counted and named in the report).
MAX_DROPPED_SHARE = 0.01


def load_history(
    path: Path, mapping: dict[str, str] | None = None, max_dropped_share: float = MAX_DROPPED_SHARE
) -> tuple[pd.DataFrame, DataReport]:
    """Read, rename, clean and sort a history; raises RejectedInputError with an actionable message.

    Rows the trainer cannot use (a time it cannot parse, no entity id, a label that is not 0/1, an
    amount that is missing, negative or not finite) are dropped and reported, unless they are more
    than `max_dropped_share` of the file: then the file is refused, naming the reasons.
    """
    if not path.exists():
        raise RejectedInputError("--data", f"{path} does not exist")
    frame = _read(path)
    # Arrow's allocator keeps the pages of the table it read unless asked to give them back, for the whole
    # run (numpy allocates elsewhere and cannot reuse them): a quarter of a GiB at two million rows.
    pa.default_memory_pool().release_unused()
    original_columns = [str(column) for column in frame.columns]
    frame = frame.rename(columns=mapping or {})
    if "customer_id" not in frame.columns and "card_id" in frame.columns:
        frame["customer_id"] = frame["card_id"]  # a card is the entity when there is no customer
    missing = [name for name in REQUIRED if name not in frame.columns]
    if missing:
        raise RejectedInputError(
            "--columns",
            f"required column(s) {', '.join(missing)} not found in {path.name} "
            f"(it has: {', '.join(original_columns[:20])}); map them with --columns ours=theirs",
        )
    rows_read = len(frame)
    frame, dropped = _cleaned(frame, path.name, max_dropped_share)
    report = DataReport(
        source=str(path),
        rows=len(frame),
        frauds=int(frame["is_fraud"].sum()),
        start=frame["event_time"].iloc[0],
        end=frame["event_time"].iloc[-1],
        columns_used=[
            c for c in frame.columns if c in set(TRANSACTION_FIELDS) | {"is_fraud", *OPTIONAL_LABEL_COLUMNS}
        ],
        skipped_families=_skipped_families(frame),
        fingerprint=_fingerprint(frame),
        dropped=dropped,
        rows_read=rows_read,
    )
    return frame, report


def _read(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file through Arrow: typed columns, repeated id strings stored once (categorical).

    Ten million rows of ids as Python strings would take gigabytes; dictionary-encoded they take
    one string per distinct id. Numeric ids stay numeric (the holdout predictions keep their type).
    """
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    try:
        if suffix == ".parquet":
            table = pq.read_table(path)
        elif suffix in (".csv", ".csv.gz"):
            table = pv.read_csv(path, convert_options=pv.ConvertOptions(strings_can_be_null=True))
        else:
            raise RejectedInputError("--data", f"{path.name}: use a .csv, .csv.gz or .parquet file")
    except pa.ArrowInvalid as exc:
        raise RejectedInputError("--data", f"{path.name} could not be read: {exc}") from exc
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = column.dictionary_encode()
        columns[name] = column
    return pa.table(columns).to_pandas()


def _cleaned(
    frame: pd.DataFrame, name: str, max_dropped_share: float
) -> tuple[pd.DataFrame, list[DroppedRows]]:
    frame = frame.assign(_source_row=np.arange(len(frame), dtype=np.int64))
    times = _parsed_times(frame["event_time"])
    labels = pd.to_numeric(_plain(frame["is_fraud"]), errors="coerce")
    amounts = pd.to_numeric(_plain(frame["amount"]), errors="coerce")
    problems = {
        "whose event_time could not be parsed (use ISO 8601 such as 2026-08-01T12:30:00Z)": (
            times.isna(),
            "event_time",
        ),
        "without a customer / card id": (frame["customer_id"].isna(), "customer_id"),
        "whose is_fraud label is not 0 or 1": (labels.isna() | ~labels.isin([0, 1]), "is_fraud"),
        "whose amount is missing, negative or not finite (0.00 is accepted; a refund is transaction_type REFUND with a positive amount)": (
            amounts.isna() | (amounts < 0) | ~np.isfinite(amounts.fillna(0.0)),
            "amount",
        ),
    }
    dropped, unusable = [], np.zeros(len(frame), dtype=bool)
    for reason, (bad, column) in problems.items():
        bad = bad.to_numpy(dtype=bool)
        if bad.any():
            first = np.flatnonzero(bad)[:3]
            examples = [f"row {i + 1}: {column}={_shown(frame[column].iloc[i])}" for i in first]
            dropped.append(DroppedRows(reason, int(bad.sum()), examples))
            unusable |= bad
    share = unusable.mean() if len(frame) else 0.0
    if share > max_dropped_share:
        raise RejectedInputError(
            "--data",
            f"{int(unusable.sum()):,} of {len(frame):,} rows of {name} ({share:.2%}) are unusable, more than "
            f"the allowed {max_dropped_share:.2%} (--max-dropped-share): "
            + "; ".join(d.describe() for d in dropped),
        )
    keep = ~unusable
    frame = frame.loc[keep].assign(
        event_time=times[keep],
        is_fraud=labels[keep].astype(np.int8),
        # in cents, as the platform stores and scores them: a model trained on 12.345 would see 12.35 online
        amount=np.rint(amounts[keep].astype(float) * 100) / 100,
    )
    frauds = int(frame["is_fraud"].sum())
    if frauds < MIN_FRAUDS:
        raise RejectedInputError(
            "is_fraud",
            f"{name} has only {frauds} fraud label(s); at least {MIN_FRAUDS} are needed to train and "
            "evaluate honestly",
        )
    for column in ("label_available_at", "credential_change_at", "account_opened_at"):
        if column in frame.columns:
            frame[column] = _parsed_times(frame[column])
    # Point-in-time order: by event time; ties keep the source's order (or the ids'), so every run of
    # the same file sees the same sequence.
    keys = (
        ["event_time", "transaction_id"]
        if "transaction_id" in frame.columns
        else ["event_time", "_source_row"]
    )
    frame = frame.sort_values(keys, kind="stable").reset_index(drop=True)
    if "transaction_id" not in frame.columns:
        frame["transaction_id"] = frame["_source_row"]  # the row number in the source: numeric, like the file
    return frame.drop(columns="_source_row"), dropped


def _shown(value: object) -> str:
    """A source value as a user would recognise it: '2', not np.int64(2)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _plain(column: pd.Series) -> pd.Series:
    return column.astype(object) if isinstance(column.dtype, pd.CategoricalDtype) else column


def _parsed_times(column: pd.Series) -> pd.Series:
    """UTC times from datetimes (naive = UTC, offsets honoured), ISO strings or epoch seconds; NaT where not."""
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        return column.dt.tz_localize("UTC") if column.dt.tz is None else column.dt.tz_convert("UTC")
    if pd.api.types.is_numeric_dtype(column.dtype):
        return pd.to_datetime(column, unit="s", utc=True, errors="coerce")
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = _iso_times(pd.Series(column.cat.categories.astype(str)))
        codes = column.cat.codes.to_numpy()
        parsed = np.where(
            codes >= 0,
            categories.to_numpy(dtype="datetime64[ns]")[np.maximum(codes, 0)],
            np.datetime64("NaT"),
        )
        return pd.Series(pd.to_datetime(parsed, utc=True), index=column.index)
    return _iso_times(column.astype(object).where(column.notna(), None).astype(str))


_OFFSET = r"(?:Z|[+-]\d\d(?::?\d\d)?)$"


def _iso_times(texts: pd.Series) -> pd.Series:
    """ISO 8601 strings to UTC: those with an offset by their offset, naive ones as UTC.

    pandas parses a column that mixes the two as if every value had the first offset it saw, so
    the two kinds are parsed apart.
    """
    with_offset = texts.str.contains(_OFFSET, regex=True, na=False).to_numpy()
    out = pd.Series(pd.NaT, index=texts.index, dtype="datetime64[ns, UTC]")
    for mask in (with_offset, ~with_offset):
        if mask.any():
            out[mask] = pd.to_datetime(texts[mask], utc=True, errors="coerce", format="ISO8601")
    return out


def _skipped_families(frame: pd.DataFrame) -> dict[str, str]:
    skipped = {}
    for family, inputs in FAMILY_INPUTS.items():
        absent = [column for column in inputs if column not in frame.columns or frame[column].isna().all()]
        if len(absent) == len(inputs):
            skipped[family] = f"no {' / '.join(inputs)} column"
    return skipped


def _fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of the training data (ids, times, amounts, labels): which data made this model."""
    digest = hashlib.sha256()
    for column in ("transaction_id", "event_time", "amount", "is_fraud"):
        digest.update(pd.util.hash_pandas_object(frame[column], index=False).to_numpy().tobytes())
    return f"sha256:{digest.hexdigest()[:32]}"
