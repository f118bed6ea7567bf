"""The entity table's compiled part: per merchant, terminal, device, IP and beneficiary, counts and fraud rates.

An entity row holds decayed transaction counts and a ring of the last `ENTITY_DAYS` days; a day whose
end lies at least the label delay in the past is "matured" (its labels are as known as they will be
in production) and is folded into decayed totals of transactions and known frauds. The fraud rate
divides those two, so numerator and denominator cover the same delayed window.

Every event reaches the table only when its epoch closes (`close_epoch`): a transaction sees the
table as of the start of an epoch (its own minus `FeatureConfig.entity_lag_epochs`). That is what a separate entity-state component can publish
exactly (docs/entity-features.md), and offline replay reproduces it by running the same functions
with the same lag.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from fraudops.features import layout as L
from fraudops.features.spec import DAY, ENTITY_FEATURES_PER_TABLE, Feature

TAU_1D = DAY
TAU_7D = 7 * DAY
TAU_30D = 30 * DAY
N_ENTITY_TABLES = 5
_LOG_64 = math.log(64.0)


@nb.njit(cache=True, inline="always")
def _day_end(day: float) -> float:
    return (day + 1.0) * DAY


@nb.njit(cache=True, inline="always")
def _ring(day: float) -> int:
    return int(day) % L.ENTITY_DAYS


@nb.njit(cache=True)
def _matured_until(now: float, label_delay_s: float) -> float:
    """The last day whose end is at least the label delay before `now`."""
    return math.floor((now - label_delay_s) / DAY) - 1.0


@nb.njit(cache=True)
def _fold_matured(EF: np.ndarray, row: int, now: float, label_delay_s: float) -> None:
    """Move the ring's matured days into the decayed totals, oldest first."""
    last = EF[row, L.E_LAST_DAY]
    upto = min(_matured_until(now, label_delay_s), last)
    day = max(EF[row, L.E_FOLDED_DAY] + 1.0, last - L.ENTITY_DAYS + 1.0)
    while day <= upto:
        end = _day_end(day)
        k = _ring(day)
        decay = (
            math.exp(-(end - EF[row, L.E_MATURED_TIME]) / TAU_30D) if EF[row, L.E_MATURED_TIME] > 0.0 else 0.0
        )
        EF[row, L.E_MATURED_TX] = EF[row, L.E_MATURED_TX] * decay + EF[row, L.E_RING_TX + k]
        EF[row, L.E_MATURED_FRAUD] = EF[row, L.E_MATURED_FRAUD] * decay + EF[row, L.E_RING_FRAUD + k]
        EF[row, L.E_MATURED_TIME] = end
        EF[row, L.E_FOLDED_DAY] = day
        day += 1.0
    if upto > EF[row, L.E_FOLDED_DAY]:  # days outside the ring held nothing: only the marker moves
        EF[row, L.E_FOLDED_DAY] = upto


@nb.njit(cache=True)
def _advance_ring(EF: np.ndarray, EI: np.ndarray, row: int, day: float) -> None:
    """Make `day` the newest day of the ring, clearing the buckets it reuses (already folded)."""
    if EF[row, L.E_SEEN] == 0.0:
        EF[row, L.E_SEEN] = 1.0
        EF[row, L.E_LAST_DAY] = day
        EF[row, L.E_FOLDED_DAY] = day - 1.0
        return
    last = EF[row, L.E_LAST_DAY]
    if day <= last:
        return
    first_new = max(last + 1.0, day - L.ENTITY_DAYS + 1.0)
    d = first_new
    while d <= day:
        k = _ring(d)
        EF[row, L.E_RING_TX + k] = 0.0
        EF[row, L.E_RING_FRAUD + k] = 0.0
        EI[row, L.EI_RING_CUSTOMERS + k] = 0
        d += 1.0
    EF[row, L.E_LAST_DAY] = day


@nb.njit(cache=True)
def _add_to_day(EF: np.ndarray, row: int, day: float, column: int) -> bool:
    """Count one event of `day` in the ring if the day is there and not folded; else in the totals."""
    if day > EF[row, L.E_FOLDED_DAY] and day > EF[row, L.E_LAST_DAY] - L.ENTITY_DAYS:
        EF[row, column + _ring(day)] += 1.0
        return True
    # a late event for a day already folded (or older than the ring) goes straight into the totals
    total = L.E_MATURED_TX if column == L.E_RING_TX else L.E_MATURED_FRAUD
    if EF[row, L.E_MATURED_TIME] <= 0.0:
        EF[row, L.E_MATURED_TIME] = _day_end(day)
    age = EF[row, L.E_MATURED_TIME] - _day_end(day)
    EF[row, total] += math.exp(-max(age, 0.0) / TAU_30D)
    return False


@nb.njit(cache=True)
def apply_transaction(
    EF: np.ndarray, EI: np.ndarray, row: int, now: float, customer_hash: int, label_delay_s: float
) -> None:
    _fold_matured(EF, row, now, label_delay_s)
    day = math.floor(now / DAY)
    _advance_ring(EF, EI, row, day)
    in_ring = _add_to_day(EF, row, day, L.E_RING_TX)
    if in_ring and customer_hash != 0:
        EI[row, L.EI_RING_CUSTOMERS + _ring(day)] |= np.int64(1) << np.int64(customer_hash & 63)
    elapsed = max(now - EF[row, L.E_TX_TIME], 0.0) if EF[row, L.E_TX_TIME] > 0.0 else 0.0
    EF[row, L.E_TX_1D] = EF[row, L.E_TX_1D] * math.exp(-elapsed / TAU_1D) + 1.0
    EF[row, L.E_TX_7D] = EF[row, L.E_TX_7D] * math.exp(-elapsed / TAU_7D) + 1.0
    EF[row, L.E_TX_30D] = EF[row, L.E_TX_30D] * math.exp(-elapsed / TAU_30D) + 1.0
    EF[row, L.E_TX_TIME] = max(EF[row, L.E_TX_TIME], now)


@nb.njit(cache=True)
def apply_fraud_label(
    EF: np.ndarray, EI: np.ndarray, row: int, known_at: float, fraud_time: float, label_delay_s: float
) -> None:
    """A fraud confirmed at `known_at` on a transaction of this entity made at `fraud_time`."""
    _fold_matured(EF, row, known_at, label_delay_s)
    day = math.floor(fraud_time / DAY)
    _advance_ring(EF, EI, row, day)
    _add_to_day(EF, row, day, L.E_RING_FRAUD)


@nb.njit(cache=True)
def entity_features(
    EF: np.ndarray, EI: np.ndarray, row: int, at: float, label_delay_s: float, out: np.ndarray, first: int
) -> None:
    """The six features of one entity as of `at` (a pure read: nothing is folded or decayed in place)."""
    if row < 0 or EF[row, L.E_SEEN] == 0.0:
        for j in range(ENTITY_FEATURES_PER_TABLE):
            out[first + j] = 0.0
        out[first + 4] = np.nan  # no matured transaction: the rate is unknown, not zero
        return
    elapsed = max(at - EF[row, L.E_TX_TIME], 0.0)
    out[first + 0] = EF[row, L.E_TX_1D] * math.exp(-elapsed / TAU_1D)
    out[first + 1] = EF[row, L.E_TX_7D] * math.exp(-elapsed / TAU_7D)
    out[first + 2] = EF[row, L.E_TX_30D] * math.exp(-elapsed / TAU_30D)
    matured_tx = 0.0
    matured_fraud = 0.0
    if EF[row, L.E_MATURED_TIME] > 0.0:
        decay = math.exp(-(at - EF[row, L.E_MATURED_TIME]) / TAU_30D)
        matured_tx = EF[row, L.E_MATURED_TX] * decay
        matured_fraud = EF[row, L.E_MATURED_FRAUD] * decay
    last = EF[row, L.E_LAST_DAY]
    upto = min(_matured_until(at, label_delay_s), last)
    day = max(EF[row, L.E_FOLDED_DAY] + 1.0, last - L.ENTITY_DAYS + 1.0)
    while day <= upto:
        decay = math.exp(-(at - _day_end(day)) / TAU_30D)
        matured_tx += EF[row, L.E_RING_TX + _ring(day)] * decay
        matured_fraud += EF[row, L.E_RING_FRAUD + _ring(day)] * decay
        day += 1.0
    out[first + 3] = matured_tx
    out[first + 4] = matured_fraud / matured_tx if matured_tx > 1e-9 else np.nan
    today = math.floor(at / DAY)
    seen = np.int64(0)
    day = max(today - 6.0, last - L.ENTITY_DAYS + 1.0)
    while day <= min(today, last):
        seen |= EI[row, L.EI_RING_CUSTOMERS + _ring(day)]
        day += 1.0
    empty = 64
    while seen:
        seen &= seen - np.int64(1)
        empty -= 1
    # linear counting: the expected number of distinct customers that leave `empty` of 64 bits unset
    out[first + 5] = 64.0 * (_LOG_64 - math.log(empty)) if empty > 0 else 64.0 * _LOG_64


@nb.njit(cache=True, inline="always")
def _apply_event(
    EF: np.ndarray, EI: np.ndarray, qf: np.ndarray, qi: np.ndarray, q: int, label_delay_s: float
) -> None:
    """Apply queued event q (a transaction, or a fraud label at its known-at time) to each entity it names."""
    when = qf[q, L.QF_TIME]
    is_label = not math.isnan(qf[q, L.QF_FRAUD_TIME])
    for table in range(N_ENTITY_TABLES):
        row = qi[q, L.QI_ENTITY + table]
        if row < 0:
            continue
        if is_label:
            apply_fraud_label(EF, EI, row, when, qf[q, L.QF_FRAUD_TIME], label_delay_s)
        else:
            apply_transaction(EF, EI, row, when, qi[q, L.QI_CUSTOMER], label_delay_s)


@nb.njit(cache=True)
def close_epoch(
    EF: np.ndarray,
    EI: np.ndarray,
    qf: np.ndarray,
    qi: np.ndarray,
    queued: int,
    epoch_start: float,
    label_delay_s: float,
) -> int:
    """Apply the queued events before `epoch_start` in arrival order; keep the rest; returns the new length."""
    kept = 0
    for q in range(queued):
        when = qf[q, L.QF_TIME]
        if when >= epoch_start:
            if kept != q:
                qf[kept] = qf[q]
                qi[kept] = qi[q]
            kept += 1
            continue
        _apply_event(EF, EI, qf, qi, q, label_delay_s)
    return kept


@nb.njit(cache=True)
def apply_events(
    EF: np.ndarray,
    EI: np.ndarray,
    qf: np.ndarray,
    qi: np.ndarray,
    start: int,
    stop: int,
    label_delay_s: float,
) -> None:
    """Apply the queued events start..stop-1 in queue order, as `close_epoch` applies those it closes (the
    queue stays as it is: the entity-state component closes many epochs, then drops their events once)."""
    for q in range(start, stop):
        _apply_event(EF, EI, qf, qi, q, label_delay_s)


#: The first entity feature; table t's six features start at ENTITY_FIRST + 6 t.
ENTITY_FIRST = int(Feature.MERCHANT_TX_1D)


@nb.njit(cache=True)
def ingest(
    EF: np.ndarray,
    EI: np.ndarray,
    qf: np.ndarray,
    qi: np.ndarray,
    queued: int,
    epoch: float,
    times: np.ndarray,
    rows: np.ndarray,
    customer_hashes: np.ndarray,
    epoch_s: float,
    label_delay_s: float,
) -> tuple[int, float]:
    """The entity-state component's loop: queue each transaction, closing epochs as time passes them.

    The same steps `process_batch` takes for the entity table, without the customer features: what a
    component that only keeps the table runs. Returns (events queued, current epoch).
    """
    for i in range(times.shape[0]):
        this_epoch = math.floor(times[i] / epoch_s)
        if this_epoch > epoch:
            queued = close_epoch(EF, EI, qf, qi, queued, this_epoch * epoch_s, label_delay_s)
            epoch = this_epoch
        qf[queued, L.QF_TIME] = times[i]
        qf[queued, L.QF_FRAUD_TIME] = np.nan
        for table in range(N_ENTITY_TABLES):
            qi[queued, L.QI_ENTITY + table] = rows[i, table]
        qi[queued, L.QI_CUSTOMER] = customer_hashes[i]
        queued += 1
    return queued, epoch


@nb.njit(cache=True)
def read_entity_features(
    EF: np.ndarray,
    EI: np.ndarray,
    rows: np.ndarray,
    times: np.ndarray,
    epochs: np.ndarray,
    epoch_s: float,
    label_delay_s: float,
    out: np.ndarray,
) -> None:
    """The thirty entity features of each transaction from a read-only table (a scorer's mirror).

    `rows[i, t]` is transaction i's row of table t in EF/EI (-1: none); `epochs[i]` the epoch whose
    start the features are read at — the transaction's own, as in `process_batch`.
    """
    for i in range(times.shape[0]):
        as_of = epochs[i] * epoch_s
        for table in range(N_ENTITY_TABLES):
            entity_features(
                EF,
                EI,
                rows[i, table],
                as_of,
                label_delay_s,
                out[i],
                ENTITY_FIRST + ENTITY_FEATURES_PER_TABLE * table,
            )
