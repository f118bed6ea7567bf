"""Load a labelled transaction history from CSV or Parquet, map its columns, and check it is trainable.

Only four columns are required (a timestamp, an entity id, an amount, a 0/1 fraud label); every
other Transaction field is used when present. Feature families whose inputs are missing are
listed in the report as skipped, with the columns they would need.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

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


def load_history(path: Path, mapping: dict[str, str] | None = None) -> tuple[pd.DataFrame, DataReport]:
    """Read, rename, validate and sort a history; raises RejectedInputError with an actionable message."""
    if not path.exists():
        raise RejectedInputError("--data", f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif suffix in (".csv", ".gz"):
        frame = pd.read_csv(path, low_memory=False)
    else:
        raise RejectedInputError("--data", f"{path.name}: use a .csv or .parquet file")
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
    frame = _validated(frame, path.name)
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
    )
    return frame, report


def _validated(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    times = pd.to_datetime(frame["event_time"], utc=True, errors="coerce", format="mixed")
    bad_times = times.isna()
    if bad_times.any():
        first = frame.loc[bad_times, "event_time"].iloc[0]
        raise RejectedInputError(
            "event_time",
            f"{int(bad_times.sum())} row(s) of {name} have unparsable timestamps (first: {first!r}); "
            "use ISO 8601 such as 2026-08-01T12:30:00Z",
        )
    frame = frame.assign(event_time=times)
    labels = pd.to_numeric(frame["is_fraud"], errors="coerce")
    if labels.isna().any() or not labels.isin([0, 1]).all():
        bad = frame.loc[labels.isna() | ~labels.isin([0, 1]), "is_fraud"].iloc[0]
        raise RejectedInputError("is_fraud", f"labels must be 0 or 1; found {bad} in {name}")
    amounts = pd.to_numeric(frame["amount"], errors="coerce")
    if amounts.isna().any() or (amounts <= 0).any() or not np.isfinite(amounts).all():
        raise RejectedInputError("amount", f"amounts must be positive finite numbers ({name})")
    frame = frame.assign(is_fraud=labels.astype(np.int8), amount=amounts.astype(float))
    frauds = int(frame["is_fraud"].sum())
    if frauds < MIN_FRAUDS:
        raise RejectedInputError(
            "is_fraud",
            f"{name} has only {frauds} fraud label(s); at least {MIN_FRAUDS} are needed to train and "
            "evaluate honestly",
        )
    if frame["customer_id"].isna().any():
        raise RejectedInputError(
            "customer_id", f"{int(frame['customer_id'].isna().sum())} row(s) have no entity id"
        )
    frame["customer_id"] = frame["customer_id"].astype(str)
    if "transaction_id" not in frame.columns:
        frame["transaction_id"] = [f"row-{i}" for i in range(len(frame))]
    frame["transaction_id"] = frame["transaction_id"].astype(str)
    for column in ("label_available_at", "credential_change_at", "account_opened_at"):
        if column in frame.columns:
            frame[column] = pd.to_datetime(frame[column], utc=True, errors="coerce", format="mixed")
    # Point-in-time order: by event time, ties broken by id so every run sees the same sequence.
    return frame.sort_values(["event_time", "transaction_id"], kind="stable").reset_index(drop=True)


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
