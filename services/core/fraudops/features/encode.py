"""Turn transactions (a DataFrame, validated records, or `Transaction` objects) into kernel arrays.

A transaction encodes to the same numbers whether it arrives from a training file, a Kafka record or
an API call. Strings are hashed with pandas' stable SipHash (`hash_array`), never Python's
per-process `hash()`: state must survive restarts.

Three paths, held to identical arrays by unit tests: DataFrames (training) go through pandas column
by column (`encode_columns`); records and larger batches of `Transaction`s are read row by row into
Python lists, one NumPy call per array (`_encode_rows`: pandas' fixed costs would be most of a stream
batch's encoding); a handful of `Transaction`s (the gateway's batch of one) are assigned row by row
(`_encode_small`), cheaper still at that size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd
from pandas._libs.hashing import hash_object_array

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


#: pandas' default SipHash key (`pandas.core.util.hashing._default_hash_key`), which `hash_array` uses
_HASH_KEY = "0123456789123456"


def siphash_texts(texts: np.ndarray) -> np.ndarray:
    """`pd.util.hash_array(texts, categorize=False)` of an object array of strings, as int64.

    pandas' private C hash and its mixing steps, without `hash_array`'s dispatch (tens of µs a call);
    a unit test holds it to `hash_array` value for value, so a pandas upgrade that changes either
    fails there rather than silently changing every stored state.
    """
    hashed = hash_object_array(texts, _HASH_KEY, "utf8")
    hashed ^= hashed >> np.uint64(30)
    hashed *= np.uint64(0xBF58476D1CE4E5B9)
    hashed ^= hashed >> np.uint64(27)
    hashed *= np.uint64(0x94D049BB133111EB)
    hashed ^= hashed >> np.uint64(31)
    return hashed.view(np.int64)


def stable_hash_texts(texts: Sequence[str]) -> np.ndarray:
    """`stable_hash` of strings none of which is missing, without its ~100 µs of missing-value handling.

    The same numbers: `categorize=True` in `stable_hash` only deduplicates before hashing.
    """
    hashed = siphash_texts(np.asarray(texts, dtype=object))
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
        return _encode_rows({name: () for name in ENCODED_FIELDS}, 0)
    try:
        # Complete records (what the decoders produce): pick and transpose in C, not field by field.
        columns: Mapping[str, Sequence[Any]] = dict(
            zip(ENCODED_FIELDS, zip(*map(_PICK_ENCODED, records), strict=True), strict=True)
        )
    except KeyError:
        columns = {name: [record.get(name) for record in records] for name in ENCODED_FIELDS}
    return _encode_rows(columns, len(records))


@dataclass(frozen=True)
class EntityEvents:
    """What the entity table takes of n transactions: their times, entity keys and customers' hashes."""

    times: np.ndarray  # float64 [n]: seconds since the epoch (`txf[:, TF_TIME]`)
    risk_keys: np.ndarray  # int64 [n, 5]: as `EncodedBatch.risk_keys`
    customer_hashes: np.ndarray  # int64 [n]: as `txi[:, TI_CUSTOMER_HASH]`

    def __len__(self) -> int:
        return len(self.times)

    @classmethod
    def of(cls, batch: EncodedBatch) -> EntityEvents:
        return cls(batch.txf[:, L.TF_TIME], batch.risk_keys, batch.txi[:, L.TI_CUSTOMER_HASH])


def encode_entity_events(records: Sequence[Mapping[str, Any]]) -> EntityEvents:
    """`EntityEvents.of(encode_records(records))`, value for value, without encoding what the entity table
    does not read (the entity-state component's decode: a third of `encode_records`' work)."""
    n = len(records)
    columns = {name: [record.get(name) for record in records] for name in _ENTITY_FIELDS}
    hashed = _hash_column(
        [
            *(value for name in _ENTITY_FIELDS[2:] for value in columns[name]),
            *_customer_texts(columns["customer_id"]),
        ]
    ).reshape(6, n)
    return EntityEvents(_seconds_column(columns["event_time"]), np.ascontiguousarray(hashed[:5].T), hashed[5])


#: what `encode_entity_events` reads; the entity keys in `risk_keys` order from the third on
_ENTITY_FIELDS = (
    "event_time",
    "customer_id",
    "merchant_id",
    "terminal_id",
    "device_id",
    "ip_address",
    "beneficiary_id",
)


def encode_records_columnar(records: Sequence[Mapping[str, Any]]) -> EncodedBatch:
    """`encode_records` through pandas (`encode_columns`): the reference the row path is tested against."""
    columns = {name: [record.get(name) for record in records] for name in ENCODED_FIELDS}
    return encode_columns(columns, len(records))


def encode_transactions(transactions: Sequence[Transaction]) -> EncodedBatch:
    if len(transactions) <= SMALL_BATCH:
        return _encode_small(transactions)
    columns = {name: [getattr(tx, name, None) for tx in transactions] for name in ENCODED_FIELDS}
    return _encode_rows(columns, len(transactions))


def _transaction_record(tx: Transaction) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name in ENCODED_FIELDS:
        value = getattr(tx, name, None)
        if isinstance(value, datetime):
            value = value.isoformat()
        record[name] = value
    return record


# --- the row path: records and Transaction objects, the same numbers as `encode_columns` -------------
# Each field is read into a Python list and each array is made by one NumPy call, with no pandas on
# the way: pandas' fixed costs (~7 ms a call) were most of a stream batch's encoding.

#: Up to this many transactions are encoded by the scalar path (`_encode_small`): below it, one NumPy
#: call per array costs more than assigning each row's values.
SMALL_BATCH = 16
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


def _hash_column(values: list[Any]) -> np.ndarray:
    """`stable_hash` of a list of strings and Nones, in one C call."""
    texts = np.array(values, dtype=object)
    missing = np.equal(texts, None)  # type: ignore[call-overload]  # (pd.isna: 2.5x the time; NaN raises below)
    if missing.any():
        texts[missing] = ""
    try:
        hashed = siphash_texts(texts)
    except TypeError:  # not all strings (integer ids): stable_hash hashes their text
        return stable_hash(values)
    hashed[hashed == 0] = 1
    hashed[missing] = 0
    return hashed


def _seconds_column(values: Sequence[Any]) -> np.ndarray:
    """Like `_seconds`: whole microseconds since the epoch (datetimes or ISO strings), as float64
    nanoseconds divided by 1e9; NaN where missing. (µs · 1000 rounds to float64 once either way.)"""
    micros: list[float | int] = []
    append = micros.append
    for value in values:
        if value is None:
            append(np.nan)
            continue
        if type(value) is str:
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        append((value - _EPOCH) // _MICROSECOND)
    return np.array(micros, dtype=np.float64) * 1000.0 / 1e9


def _number_column(values: Sequence[Any]) -> list[float]:
    return [np.nan if value is None else float(value) for value in values]


def _code_column(values: Sequence[Any], index: dict[str, int], unknown: int) -> list[int]:
    return [_code(value, index, unknown) for value in values]


def _customer_texts(values: Sequence[Any]) -> list[str | None]:
    """Customer ids as the state and the entity table key them: their text (integer ids in a user's CSV)."""
    return [None if customer is None else str(customer) for customer in values]


def _encode_rows(columns: Mapping[str, Sequence[Any]], n: int) -> EncodedBatch:
    """`encode_columns` of plain Python columns (lists of values), value for value."""
    txf = np.empty((n, L.N_TXF), dtype=np.float64)
    txf[:, L.TF_TIME] = _seconds_column(columns["event_time"])
    txf[:, L.TF_AMOUNT] = _number_column(columns["amount"])
    txf[:, L.TF_INTL] = [1.0 if value else 0.0 for value in columns["is_international"]]
    txf[:, L.TF_LAT] = _number_column(columns["latitude"])
    txf[:, L.TF_LON] = _number_column(columns["longitude"])
    txf[:, L.TF_HOUR] = _number_column(columns["hour_of_day"])
    txf[:, L.TF_CRED_CHANGE] = _seconds_column(columns["credential_change_at"])
    txf[:, L.TF_ACCOUNT_OPENED] = _seconds_column(columns["account_opened_at"])

    customers = np.empty(n, dtype=object)
    customers[:] = _customer_texts(columns["customer_id"])
    ips = columns["ip_address"]
    # Every hashed column in one call: country, device, ip, ip prefix, merchant, terminal, beneficiary, customer.
    hashed = _hash_column(
        [
            *columns["country"],
            *columns["device_id"],
            *ips,
            *[_ip_prefix(ip) for ip in ips],
            *columns["merchant_id"],
            *columns["terminal_id"],
            *columns["beneficiary_id"],
            *customers,
        ]
    ).reshape(8, n)
    country, device, ip, prefix, merchant, terminal, beneficiary, customer = hashed

    txi = np.zeros((n, L.N_TXI), dtype=np.int64)
    txi[:, L.TI_SLOT] = -1
    txi[:, L.TI_CATEGORY] = _code_column(
        columns["merchant_category"], _CATEGORY_INDEX, L.CATEGORY_CODES[MerchantCategory.OTHER]
    )
    txi[:, L.TI_CHANNEL] = _code_column(columns["channel"], _CHANNEL_INDEX, L.CH_POS)
    txi[:, L.TI_TYPE] = _code_column(columns["transaction_type"], _TYPE_INDEX, L.TY_PURCHASE)
    txi[:, L.TI_AUTH] = _code_column(columns["auth_result"], _AUTH_INDEX, -1)
    txi[:, L.TI_AUTH] += 1
    txi[:, L.TI_COUNTRY] = country
    txi[:, L.TI_DEVICE] = device
    txi[:, L.TI_IP] = ip
    txi[:, L.TI_IP_PREFIX] = prefix
    txi[:, L.TI_MERCHANT] = _place(merchant, terminal)
    txi[:, L.TI_BENEFICIARY] = beneficiary
    txi[:, L.TI_G_MERCHANT : L.TI_E_BENEFICIARY + 1] = -1
    txi[:, L.TI_CUSTOMER_HASH] = customer
    risk_keys = np.ascontiguousarray(hashed[[4, 5, 1, 2, 6]].T)  # merchant, terminal, device, ip, beneficiary
    return EncodedBatch(customer_ids=customers, txf=txf, txi=txi, risk_keys=risk_keys)


# --- the scalar path for a few Transaction objects (a gateway request's) ------------------------------

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


def _encode_small(transactions: Sequence[Transaction]) -> EncodedBatch:
    """A few transactions (the gateway's batch of one) row by row: a NumPy call per array costs more
    than per-row assignment at this size."""
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
