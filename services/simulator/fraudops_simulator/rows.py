"""The simulator's internal row batch: integer-coded columns as NumPy arrays.

Every generator (legit background, fraud episodes, look-alikes) produces `Rows`; strings and
timestamps are only made at the very end (`arrow.py`), once per output chunk, because building
Python strings per row is what would make the simulator slow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from fraudops.schema import AuthResult, Channel, MerchantCategory, TransactionType

#: Enum members in code order: a row's int8 code indexes these tuples.
CHANNELS: tuple[Channel, ...] = tuple(Channel)
TRANSACTION_TYPES: tuple[TransactionType, ...] = tuple(TransactionType)
AUTH_RESULTS: tuple[AuthResult, ...] = tuple(AuthResult)
CATEGORIES: tuple[MerchantCategory, ...] = tuple(MerchantCategory)

CH = {member.name: code for code, member in enumerate(CHANNELS)}
TT = {member.name: code for code, member in enumerate(TRANSACTION_TYPES)}
AUTH = {member.name: code for code, member in enumerate(AUTH_RESULTS)}
CAT = {member.name: code for code, member in enumerate(CATEGORIES)}

#: Beneficiary codes at or above this are external payees; below it they are our own accounts.
EXTERNAL_BENEFICIARY_BASE = 1 << 40

# column -> (dtype, default). -1 / NaN mean "absent" and become nulls in the output.
COLUMNS: dict[str, tuple[type | str, Any]] = {
    "t": (np.float64, np.nan),  # seconds since the simulation start
    "customer": (np.int32, -1),
    "card": (np.int64, -1),
    "merchant": (np.int32, -1),
    "category": (np.int8, CAT["OTHER"]),
    "terminal": (np.int32, -1),
    "amount": (np.float64, np.nan),
    "channel": (np.int8, CH["POS"]),
    "ttype": (np.int8, TT["PURCHASE"]),
    "auth": (np.int8, AUTH["APPROVED"]),
    "country": (np.int16, -1),
    "lat": (np.float64, np.nan),
    "lon": (np.float64, np.nan),
    "utc_offset_h": (np.int8, 0),  # local time at the row's location, for hour_of_day
    "device": (np.int64, -1),
    "ip": (np.int64, -1),
    "beneficiary": (np.int64, -1),
    "credential_change": (np.float64, np.nan),  # seconds since start
    "is_fraud": (np.int8, 0),
    "pattern": (np.int8, -1),
    "label_at": (np.float64, np.nan),  # seconds since start; NaN = assigned at output time
    "paced": (np.int8, 0),  # pacing.IGNORED / ANCHOR / MOVABLE: is this the customer's real whereabouts
}

Rows = dict[str, np.ndarray]


class Part(NamedTuple):
    """A few rows of an episode, kept as given (scalars or arrays) until `build_rows`.

    Episodes make thousands of tiny batches; building each as 21 NumPy arrays cost more than all
    the legit traffic, so they are collected as parts and built in one pass.
    """

    n: int
    values: dict[str, Any]


#: Extra columns of episode parts, resolved into real columns by `patterns.kit.resolve_rows`.
EPISODE_COLUMNS: dict[str, tuple[type | str, Any]] = {
    "derive": (np.int8, 0),  # 1: card-present at `merchant`; 2: app/web seen from `place_city`
    "place_city": (np.int16, -1),  # -1: the customer's home
}


def part(n: int, **values: Any) -> Part:
    unknown = values.keys() - COLUMNS.keys() - EPISODE_COLUMNS.keys()
    if unknown:
        raise KeyError(f"unknown row columns: {sorted(unknown)}")
    return Part(n, values)


def build_rows(parts: Sequence[Part]) -> Rows:
    """One batch from many parts: defaults first, then each part's values written into its slice."""
    columns = COLUMNS | EPISODE_COLUMNS
    total = sum(p.n for p in parts)
    rows: Rows = {name: np.full(total, default, dtype=dtype) for name, (dtype, default) in columns.items()}
    start = 0
    for p in parts:
        end = start + p.n
        for name, value in p.values.items():
            rows[name][start:end] = value
        start = end
    return rows


def make_rows(n: int, **values: Any) -> Rows:
    """A batch of `n` rows; scalars broadcast, omitted columns take their defaults."""
    unknown = values.keys() - COLUMNS.keys()
    if unknown:
        raise KeyError(f"unknown row columns: {sorted(unknown)}")
    rows: Rows = {}
    for name, (dtype, default) in COLUMNS.items():
        value = values.get(name, default)
        if np.ndim(value) == 0:
            rows[name] = np.full(n, value, dtype=dtype)
        else:
            array = np.asarray(value, dtype=dtype)
            if array.shape != (n,):
                raise ValueError(f"column {name} has shape {array.shape}, expected ({n},)")
            rows[name] = array
    return rows


def empty_rows() -> Rows:
    return make_rows(0)


def n_rows(rows: Mapping[str, np.ndarray]) -> int:
    return len(rows["t"])


def concat_rows(parts: Sequence[Rows]) -> Rows:
    """Concatenate batches column by column (in the given, deterministic order)."""
    parts = [part for part in parts if n_rows(part)]
    if not parts:
        return empty_rows()
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([part[name] for part in parts]) for name in COLUMNS}


def take_rows(rows: Rows, index: np.ndarray) -> Rows:
    """Rows at `index` (an integer index or a boolean mask)."""
    return {name: column[index] for name, column in rows.items()}
