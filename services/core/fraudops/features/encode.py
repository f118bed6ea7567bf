"""Turn transactions (a DataFrame, validated records, or `Transaction` objects) into kernel arrays.

All three inputs go through `encode_columns`, so a transaction encodes to the same numbers whether
it arrives from a training file, a Kafka record or an API call. Strings are hashed with pandas'
stable SipHash (`hash_array`), never Python's per-process `hash()`: state must survive restarts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from fraudops.features import layout as L
from fraudops.schema import Channel, MerchantCategory, Transaction, TransactionType

_CATEGORY_VALUES = [category.value for category in MerchantCategory]
_CHANNEL_VALUES = [channel.value for channel in Channel]
_TYPE_VALUES = [kind.value for kind in TransactionType]
_AUTH_VALUES = [result.value for result in L.AUTH_CODES if result is not None]

#: Transaction fields the encoder reads (all optional except event_time and amount).
ENCODED_FIELDS = (
    "transaction_id", "event_time", "customer_id", "merchant_id", "merchant_category", "terminal_id", "amount",
    "channel", "transaction_type", "auth_result", "is_international", "country", "latitude", "longitude",
    "device_id", "ip_address", "beneficiary_id", "credential_change_at", "account_opened_at", "hour_of_day",
)


@dataclass
class EncodedBatch:
    """Kernel input for n transactions; `txi[:, TI_SLOT]` and the risk slots are filled by the engine."""

    customer_ids: np.ndarray  # object, None for anonymous transactions
    txf: np.ndarray  # float64 [n, N_TXF]
    txi: np.ndarray  # int64 [n, N_TXI]
    risk_keys: np.ndarray  # int64 [n, 5]: merchant, terminal, device, ip, beneficiary hashes (0 = missing)

    def __len__(self) -> int:
        return len(self.txf)


def stable_hash(values: Any) -> np.ndarray:
    """A stable 64-bit hash per value; missing values hash to 0 and real values never do."""
    values = np.asarray(values, dtype=object)
    missing = pd.isna(values)
    filled = np.where(missing, "", values)
    try:
        hashed = pd.util.hash_array(filled, categorize=True)
    except TypeError:  # non-string ids (integers in a user's CSV): hash their text
        hashed = pd.util.hash_array(filled.astype(str).astype(object), categorize=True)
    out = hashed.view(np.int64).copy()
    out[out == 0] = 1
    out[missing] = 0
    return out


def _ip_prefix(ip: Any) -> Any:
    """The /24 network of an IPv4 address, or the first four groups of an IPv6 address."""
    if ip is None or (isinstance(ip, float) and np.isnan(ip)):
        return None
    text = str(ip)
    if ":" in text:
        return ":".join(text.split(":")[:4])
    return text.rsplit(".", 1)[0]


def _codes(values: np.ndarray, categories: list[str], unknown: int) -> np.ndarray:
    codes = pd.Categorical(values, categories=categories).codes
    return np.where(codes < 0, unknown, codes).astype(np.int64)


def _seconds(values: Any) -> np.ndarray:
    """Epoch seconds (float64) of a datetime column, datetimes or ISO strings; NaN where missing."""
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values, dtype=object))
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        series = pd.to_datetime(series, utc=True, format="ISO8601")
    elif series.dt.tz is None:
        series = series.dt.tz_localize("UTC")
    nanos = series.dt.tz_convert("UTC").dt.as_unit("ns").array.asi8.astype(np.float64)
    nanos[series.isna().to_numpy()] = np.nan
    return nanos / 1e9


def _floats(values: Any, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=np.float64)


def encode_columns(columns: Mapping[str, Any], n: int) -> EncodedBatch:
    """Encode column arrays (any missing optional column counts as all-missing)."""
    def column(name: str) -> np.ndarray:
        values = columns.get(name)
        return np.full(n, None, dtype=object) if values is None else np.asarray(values, dtype=object)

    txf = np.empty((n, L.N_TXF), dtype=np.float64)
    txf[:, L.TF_TIME] = _seconds(columns["event_time"])
    txf[:, L.TF_AMOUNT] = _floats(columns["amount"], n)
    intl = columns.get("is_international")
    txf[:, L.TF_INTL] = 0.0 if intl is None else np.nan_to_num(_floats(intl, n))
    txf[:, L.TF_LAT] = _floats(columns.get("latitude"), n)
    txf[:, L.TF_LON] = _floats(columns.get("longitude"), n)
    txf[:, L.TF_HOUR] = _floats(columns.get("hour_of_day"), n)
    for name, target in (("credential_change_at", L.TF_CRED_CHANGE), ("account_opened_at", L.TF_ACCOUNT_OPENED)):
        txf[:, target] = np.nan if columns.get(name) is None else _seconds(columns[name])

    txi = np.zeros((n, L.N_TXI), dtype=np.int64)
    txi[:, L.TI_SLOT] = -1
    txi[:, L.TI_CATEGORY] = _codes(column("merchant_category"), _CATEGORY_VALUES,
                                   L.CATEGORY_CODES[MerchantCategory.OTHER])
    txi[:, L.TI_CHANNEL] = _codes(column("channel"), _CHANNEL_VALUES, L.CH_POS)
    txi[:, L.TI_TYPE] = _codes(column("transaction_type"), _TYPE_VALUES, L.TY_PURCHASE)
    auth = _codes(column("auth_result"), _AUTH_VALUES, -1)
    txi[:, L.TI_AUTH] = np.where(auth < 0, 0, auth + 1)
    txi[:, L.TI_COUNTRY] = stable_hash(column("country"))
    txi[:, L.TI_DEVICE] = stable_hash(column("device_id"))
    ips = column("ip_address")
    txi[:, L.TI_IP] = stable_hash(ips)
    txi[:, L.TI_IP_PREFIX] = stable_hash(np.array([_ip_prefix(ip) for ip in ips], dtype=object))
    merchants = stable_hash(column("merchant_id"))
    txi[:, L.TI_MERCHANT] = merchants
    beneficiaries = stable_hash(column("beneficiary_id"))
    txi[:, L.TI_BENEFICIARY] = beneficiaries
    txi[:, L.TI_G_MERCHANT:L.TI_G_BENEFICIARY + 1] = -1

    risk_keys = np.stack(
        [merchants, stable_hash(column("terminal_id")), txi[:, L.TI_DEVICE], txi[:, L.TI_IP], beneficiaries], axis=1)
    customers = column("customer_id")
    customers = np.where(pd.isna(customers), None, customers.astype(str)).astype(object)
    return EncodedBatch(customer_ids=customers, txf=txf, txi=txi, risk_keys=risk_keys)


def encode_frame(frame: pd.DataFrame) -> EncodedBatch:
    """Encode a DataFrame whose columns follow the Transaction field names."""
    columns = {name: frame[name] if name.endswith(("_time", "_at")) else frame[name].to_numpy()
               for name in ENCODED_FIELDS if name in frame.columns}
    return encode_columns(columns, len(frame))


def encode_records(records: Sequence[Mapping[str, Any]]) -> EncodedBatch:
    """Encode validated records (dicts with Transaction field names, enum values as strings)."""
    columns = {name: [record.get(name) for record in records] for name in ENCODED_FIELDS}
    return encode_columns(columns, len(records))


def encode_transactions(transactions: Sequence[Transaction]) -> EncodedBatch:
    records = [_transaction_record(tx) for tx in transactions]
    return encode_records(records)


def _transaction_record(tx: Transaction) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name in ENCODED_FIELDS:
        value = getattr(tx, name, None)
        if isinstance(value, datetime):
            value = value.isoformat()
        record[name] = value
    return record
