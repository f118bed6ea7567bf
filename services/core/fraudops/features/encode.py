"""Turn transactions (a DataFrame, validated records, or `Transaction` objects) into kernel arrays.

All three inputs go through `encode_columns`, so a transaction encodes to the same numbers whether
it arrives from a training file, a Kafka record or an API call. Strings are hashed with pandas'
stable SipHash (`hash_array`), never Python's per-process `hash()`: state must survive restarts.

The one exception is a handful of `Transaction` objects (the gateway's batch of one): going through
pandas costs milliseconds there, so `encode_transactions` builds those rows directly with the same
rules. A unit test holds the two paths to identical arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
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
    "transaction_id",
    "event_time",
    "customer_id",
    "merchant_id",
    "merchant_category",
    "terminal_id",
    "amount",
    "channel",
    "transaction_type",
    "auth_result",
    "is_international",
    "country",
    "latitude",
    "longitude",
    "device_id",
    "ip_address",
    "beneficiary_id",
    "credential_change_at",
    "account_opened_at",
    "hour_of_day",
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


def stable_hash_texts(texts: Sequence[str]) -> np.ndarray:
    """`stable_hash` of strings none of which is missing, without its ~100 µs of missing-value handling.

    The same numbers: `categorize=True` in `stable_hash` only deduplicates before hashing.
    """
    hashed = pd.util.hash_array(np.asarray(texts, dtype=object), categorize=False).view(np.int64).copy()
    hashed[hashed == 0] = 1
    return hashed


def _ip_prefix(ip: Any) -> Any:
    """The /24 network of an IPv4 address, or the first four groups of an IPv6 address."""
    if ip is None or (isinstance(ip, float) and np.isnan(ip)):
        return None
    text = str(ip)
    if ":" in text:
        return ":".join(text.split(":")[:4])
    return text.rsplit(".", 1)[0]


def _normalised(value: Any) -> str:
    """How a categorical value is compared: trimmed and case-folded, as the API's enums accept it."""
    return str(value).strip().casefold()


def _codes(values: np.ndarray, categories: list[str], unknown: int) -> np.ndarray:
    """Codes of the canonical spellings at C speed; other spellings (`Electronics `) by their normal form.

    Training reads whatever a bank's export holds, while the API accepts any letter case: both must
    give `electronics` the same code, never OTHER on one side only.
    """
    codes = pd.Categorical(values, categories=categories).codes.astype(np.int64)
    odd = (codes < 0) & ~pd.isna(values)
    if odd.any():
        folded = {_normalised(category): i for i, category in enumerate(categories)}
        codes[odd] = [folded.get(_normalised(value), -1) for value in values[odd]]
    return np.where(codes < 0, unknown, codes)


def _seconds(values: Any) -> np.ndarray:
    """Epoch seconds (float64) of a datetime column, datetimes or ISO strings; NaN where missing."""
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values, dtype=object))
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        series = pd.to_datetime(series, utc=True, format="ISO8601")
    elif series.dt.tz is None:
        series = series.dt.tz_localize("UTC")
    nanos = series.dt.tz_convert("UTC").dt.as_unit("ns").array.asi8.astype(np.float64)  # type: ignore[attr-defined]
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
    for name, target in (
        ("credential_change_at", L.TF_CRED_CHANGE),
        ("account_opened_at", L.TF_ACCOUNT_OPENED),
    ):
        txf[:, target] = np.nan if columns.get(name) is None else _seconds(columns[name])

    txi = np.zeros((n, L.N_TXI), dtype=np.int64)
    txi[:, L.TI_SLOT] = -1
    txi[:, L.TI_CATEGORY] = _codes(
        column("merchant_category"), _CATEGORY_VALUES, L.CATEGORY_CODES[MerchantCategory.OTHER]
    )
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
    terminals = stable_hash(column("terminal_id"))
    txi[:, L.TI_MERCHANT] = _place(merchants, terminals)
    beneficiaries = stable_hash(column("beneficiary_id"))
    txi[:, L.TI_BENEFICIARY] = beneficiaries
    txi[:, L.TI_G_MERCHANT : L.TI_E_BENEFICIARY + 1] = -1

    risk_keys = np.stack([merchants, terminals, txi[:, L.TI_DEVICE], txi[:, L.TI_IP], beneficiaries], axis=1)
    customers = column("customer_id")
    customers = np.where(pd.isna(customers), None, customers.astype(str)).astype(object)  # type: ignore[call-overload]
    txi[:, L.TI_CUSTOMER_HASH] = stable_hash(customers)
    return EncodedBatch(customer_ids=customers, txf=txf, txi=txi, risk_keys=risk_keys)


def _place(merchants: np.ndarray, terminals: np.ndarray) -> np.ndarray:
    """Where the customer paid, for their own novelty features: the merchant, else the terminal.

    An export with terminals but no merchant ids (the common five-column history) still shows a
    customer at a terminal they never used before.
    """
    return np.where(merchants != 0, merchants, terminals)


def encode_frame(frame: pd.DataFrame) -> EncodedBatch:
    """Encode a DataFrame whose columns follow the Transaction field names."""
    columns = {
        name: frame[name] if name.endswith(("_time", "_at")) else frame[name].to_numpy()
        for name in ENCODED_FIELDS
        if name in frame.columns
    }
    return encode_columns(columns, len(frame))


_PICK_ENCODED = itemgetter(*ENCODED_FIELDS)


def encode_records(records: Sequence[Mapping[str, Any]]) -> EncodedBatch:
    """Encode validated records (dicts with Transaction field names, enum values as strings)."""
    if not records:
        return encode_columns({name: [] for name in ENCODED_FIELDS}, 0)
    if len(records) <= SMALL_RECORDS:  # pandas' fixed costs (~7 ms a batch) exceed the row-by-row path
        return _encode_small([_RecordView(record) for record in records])
    return encode_records_columnar(records)


def encode_records_columnar(records: Sequence[Mapping[str, Any]]) -> EncodedBatch:
    """`encode_records` column by column (pandas), whatever the batch size."""
    columns: dict[str, Sequence[Any]]
    try:
        # Complete records (what the decoders produce): pick and transpose in C, not field by field.
        transposed = zip(*map(_PICK_ENCODED, records), strict=True)
        columns = dict(zip(ENCODED_FIELDS, transposed, strict=True))
    except KeyError:
        columns = {name: [record.get(name) for record in records] for name in ENCODED_FIELDS}
    return encode_columns(columns, len(records))


def encode_transactions(transactions: Sequence[Transaction]) -> EncodedBatch:
    if len(transactions) <= SMALL_BATCH:
        return _encode_small(transactions)
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


# --- the direct path for a few Transaction objects (identical arrays, no pandas per value) -------------

#: Up to this many transactions are encoded row by row; pandas' fixed costs win above it.
SMALL_BATCH = 16
#: The same crossover for decoded records (~25 µs a record row by row, ~7 ms + ~2 µs a record with pandas).
SMALL_RECORDS = 256
_TIME_FIELDS = frozenset({"event_time", "credential_change_at", "account_opened_at"})


class _RecordView:
    """A decoded record (a dict, times as ISO strings) read like a Transaction by `_encode_small`."""

    __slots__ = ("record",)

    def __init__(self, record: Mapping[str, Any]) -> None:
        self.record = record

    def __getattr__(self, name: str) -> Any:
        value = self.record.get(name)
        if name in _TIME_FIELDS and isinstance(value, str):
            return datetime.fromisoformat(value)
        return value


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_CATEGORY_INDEX = {value: i for i, value in enumerate(_CATEGORY_VALUES)}
_CHANNEL_INDEX = {value: i for i, value in enumerate(_CHANNEL_VALUES)}
_TYPE_INDEX = {value: i for i, value in enumerate(_TYPE_VALUES)}
_AUTH_INDEX = {value: i for i, value in enumerate(_AUTH_VALUES)}
#: normal form -> canonical spelling, for every categorical value the encoder knows
_FOLDED = {
    _normalised(value): value for value in (*_CATEGORY_VALUES, *_CHANNEL_VALUES, *_TYPE_VALUES, *_AUTH_VALUES)
}
_HASH_CACHE: dict[str, int] = {}
_HASH_CACHE_SIZE = 100_000


def _hashes(texts: Sequence[str | None]) -> list[int]:
    """`stable_hash` of each value, through a bounded cache (ids repeat: merchants, countries, devices)."""
    known = {text: _HASH_CACHE.get(text) for text in texts if text is not None}
    unknown = [text for text, hashed in known.items() if hashed is None]
    if unknown:
        fresh = dict(zip(unknown, stable_hash_texts(unknown).tolist(), strict=True))
        known.update(fresh)
        if len(_HASH_CACHE) + len(fresh) > _HASH_CACHE_SIZE:
            _HASH_CACHE.clear()
        _HASH_CACHE.update(fresh)
    return [0 if text is None else known[text] for text in texts]  # type: ignore[misc]


def _epoch_seconds(value: datetime | None) -> float:
    """Like `_seconds`: whole nanoseconds since the epoch as float64, divided by 1e9 (NaN if missing)."""
    if value is None:
        return np.nan
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(((value - _EPOCH) // _MICROSECOND) * 1000) / 1e9


def _number(value: Any) -> float:
    return np.nan if value is None else float(value)


def _code(value: Any, index: dict[str, int], unknown: int) -> int:
    if value is None:
        return unknown
    code = index.get(str(value))
    if code is None:
        code = index.get(_FOLDED.get(_normalised(value), ""), unknown)
    return code


def _encode_small(transactions: Sequence[Transaction | _RecordView]) -> EncodedBatch:
    n = len(transactions)
    txf = np.empty((n, L.N_TXF), dtype=np.float64)
    txi = np.zeros((n, L.N_TXI), dtype=np.int64)
    risk_keys = np.empty((n, len(L.RISK_TABLES)), dtype=np.int64)
    other = L.CATEGORY_CODES[MerchantCategory.OTHER]
    texts: list[
        str | None
    ] = []  # every row's hashed keys, hashed in one call (new keys cost one pandas call, not one a row)
    for tx in transactions:
        texts.extend(
            (
                tx.country,
                tx.device_id,
                tx.ip_address,
                _ip_prefix(tx.ip_address),
                tx.merchant_id,
                tx.beneficiary_id,
                tx.terminal_id,
                None if tx.customer_id is None else str(tx.customer_id),
            )
        )
    hashed = _hashes(texts)
    for row, tx in enumerate(transactions):
        txf[row] = (
            _epoch_seconds(tx.event_time),
            _number(tx.amount),
            float(bool(tx.is_international)),
            _number(tx.latitude),
            _number(tx.longitude),
            _number(tx.hour_of_day),
            _epoch_seconds(tx.credential_change_at),
            _epoch_seconds(tx.account_opened_at),
        )
        country, device, ip, prefix, merchant, beneficiary, terminal, customer = hashed[row * 8 : row * 8 + 8]
        codes = txi[row]
        codes[L.TI_SLOT] = -1
        codes[L.TI_CATEGORY] = _code(tx.merchant_category, _CATEGORY_INDEX, other)
        codes[L.TI_CHANNEL] = _code(tx.channel, _CHANNEL_INDEX, L.CH_POS)
        codes[L.TI_TYPE] = _code(tx.transaction_type, _TYPE_INDEX, L.TY_PURCHASE)
        codes[L.TI_AUTH] = _code(tx.auth_result, _AUTH_INDEX, -1) + 1
        codes[L.TI_COUNTRY] = country
        codes[L.TI_DEVICE] = device
        codes[L.TI_IP] = ip
        codes[L.TI_IP_PREFIX] = prefix
        codes[L.TI_MERCHANT] = merchant if merchant != 0 else terminal
        codes[L.TI_BENEFICIARY] = beneficiary
        codes[L.TI_G_MERCHANT : L.TI_E_BENEFICIARY + 1] = -1
        codes[L.TI_CUSTOMER_HASH] = customer
        risk_keys[row] = (merchant, terminal, device, ip, beneficiary)
    customers = np.empty(n, dtype=object)
    customers[:] = [None if tx.customer_id is None else str(tx.customer_id) for tx in transactions]
    return EncodedBatch(customer_ids=customers, txf=txf, txi=txi, risk_keys=risk_keys)
