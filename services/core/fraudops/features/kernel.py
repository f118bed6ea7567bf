"""The compiled feature kernel: for each transaction, features from the state *before* it, then the update.

One loop serves a batch of one (gateway), a micro-batch (stream) and a replay of millions
(training), so online and offline features are the same code. Fraud-label events are merged in
by the time they became known: a label known at time k only affects transactions after k.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from fraudops.features import layout as L
from fraudops.features.entity_kernel import ENTITY_FIRST, N_ENTITY_TABLES, close_epoch, entity_features
from fraudops.features.spec import DAY, ENTITY_FEATURES_PER_TABLE, FIRST_SEEN_CAP_DAYS, HOUR, MINUTE, Feature

TAU_1H = HOUR
TAU_24H = DAY
TAU_7D = 7 * DAY
TAU_30D = 30 * DAY
IMPOSSIBLE_SPEED_KMH = 900.0
EARTH_RADIUS_KM = 6371.0088
NAN = np.nan
CENT = 0.01  # the smallest amount above zero


@nb.njit(cache=True, inline="always")
def _decayed(value: float, elapsed_s: float, tau_s: float) -> float:
    if elapsed_s <= 0.0:
        return value
    return value * math.exp(-elapsed_s / tau_s)


@nb.njit(cache=True, inline="always")
def _log_age(now: float, then: float) -> float:
    if then <= 0.0:
        return NAN
    return math.log1p(max(now - then, 0.0))


@nb.njit(cache=True)
def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2.0 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@nb.njit(cache=True)
def _civil_day_of_month(days_since_epoch: int) -> int:
    """Day of month from days since 1970-01-01 (Howard Hinnant's civil_from_days)."""
    z = days_since_epoch + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    return doy - (153 * mp + 2) // 5 + 1


# --- least-recently-used sets inside a customer's rows ----------------------------------------------


@nb.njit(cache=True)
def _set_find(ints: np.ndarray, row: int, ibase: int, k: int, key: int) -> int:
    for j in range(k):
        if ints[row, ibase + j] == key:
            return j
    return -1


@nb.njit(cache=True)
def _set_touch(
    ints: np.ndarray, floats: np.ndarray, row: int, ibase: int, fbase: int, k: int, key: int, now: float
) -> None:
    """Record a use of `key`: bump it, or insert it in an empty entry or over the least recently used."""
    j = _set_find(ints, row, ibase, k, key)
    if j >= 0:
        floats[row, fbase + k + j] = max(floats[row, fbase + k + j], now)
        floats[row, fbase + 2 * k + j] += 1.0
        return
    victim = 0
    oldest = np.inf
    for m in range(k):
        if ints[row, ibase + m] == 0:
            victim = m
            break
        if floats[row, fbase + k + m] < oldest:
            oldest = floats[row, fbase + k + m]
            victim = m
    ints[row, ibase + victim] = key
    floats[row, fbase + victim] = now
    floats[row, fbase + k + victim] = now
    floats[row, fbase + 2 * k + victim] = 1.0


@nb.njit(cache=True)
def _set_distinct_since(
    ints: np.ndarray, floats: np.ndarray, row: int, ibase: int, fbase: int, k: int, since: float
) -> int:
    count = 0
    for m in range(k):
        if ints[row, ibase + m] != 0 and floats[row, fbase + k + m] >= since:
            count += 1
    return count


# --- label events ---------------------------------------------------------------------------------


@nb.njit(cache=True, inline="always")
def _add_decayed_event(count: float, last: float, at: float) -> tuple[float, float]:
    """Add one event at `at` to a decayed count kept at time `last` (events may arrive out of order)."""
    if last <= 0.0:
        return 1.0, at
    if at >= last:
        return count * math.exp(-(at - last) / TAU_30D) + 1.0, at
    return count + math.exp(-(last - at) / TAU_30D), last


@nb.njit(cache=True)
def _apply_label(
    labf: np.ndarray,
    labi: np.ndarray,
    j: int,
    floats: np.ndarray,
    risk_count: np.ndarray,
    risk_time: np.ndarray,
) -> None:
    known_at = labf[j, L.LF_KNOWN_AT]
    slot = labi[j, L.LI_SLOT]
    if slot >= 0:
        c, t = _add_decayed_event(
            floats[slot, L.S_FRAUD_LABELS], floats[slot, L.S_FRAUD_LABEL_TIME], known_at
        )
        floats[slot, L.S_FRAUD_LABELS] = c
        floats[slot, L.S_FRAUD_LABEL_TIME] = t
    for table in range(risk_count.shape[0]):
        entity = labi[j, L.LI_G_MERCHANT + table]
        if entity >= 0:
            c, t = _add_decayed_event(risk_count[table, entity], risk_time[table, entity], known_at)
            risk_count[table, entity] = c
            risk_time[table, entity] = t


@nb.njit(cache=True)
def relabel_customers(
    slots: np.ndarray,
    labf: np.ndarray,
    labi: np.ndarray,
    floats: np.ndarray,
    risk_count: np.ndarray,
    risk_time: np.ndarray,
) -> None:
    """Clear what labels wrote into these customers' rows, then apply these labels (in order) again.

    The labels' risk-table slots are -1: the risk tables counted them when they were first applied.
    Clears exactly the columns `_apply_label` writes into a customer's row; keep the two together.
    """
    for s in slots:
        floats[s, L.S_FRAUD_LABELS] = 0.0
        floats[s, L.S_FRAUD_LABEL_TIME] = 0.0
    for j in range(labf.shape[0]):
        _apply_label(labf, labi, j, floats, risk_count, risk_time)


@nb.njit(cache=True, inline="always")
def _risk_at(risk_count: np.ndarray, risk_time: np.ndarray, table: int, entity: int, now: float) -> float:
    if entity < 0 or risk_time[table, entity] <= 0.0:
        return 0.0
    return _decayed(risk_count[table, entity], now - risk_time[table, entity], TAU_30D)


# --- features of one transaction from the state before it ---------------------------------------------


@nb.njit(cache=True)
def _features(
    F: np.ndarray,
    I: np.ndarray,
    row: int,
    txf: np.ndarray,
    txi: np.ndarray,
    i: int,
    risk_count: np.ndarray,
    risk_time: np.ndarray,
    out: np.ndarray,
) -> None:
    o = out[i]
    now = txf[i, L.TF_TIME]
    amount = txf[i, L.TF_AMOUNT]
    log_amount = math.log1p(amount)
    n_prev = F[row, L.S_TX_TOTAL]
    has_history = n_prev > 0.0
    elapsed = max(now - F[row, L.S_LAST_TIME], 0.0) if has_history else 0.0
    category = txi[i, L.TI_CATEGORY]
    channel = txi[i, L.TI_CHANNEL]
    kind = txi[i, L.TI_TYPE]
    auth = txi[i, L.TI_AUTH]

    # amount against the customer's own history
    o[Feature.AMOUNT] = amount
    o[Feature.LOG_AMOUNT] = log_amount
    if n_prev >= 2.0:
        o[Feature.AMOUNT_ZSCORE] = (log_amount - F[row, L.S_LOGAMT_MEAN]) / math.sqrt(
            F[row, L.S_LOGAMT_VAR] + 0.01
        )
    else:
        o[Feature.AMOUNT_ZSCORE] = NAN
    # Past amounts may all be zero (card verifications): the ratios then compare with one cent, which
    # changes nothing for a history of real amounts (every mean and maximum of those is at least a cent).
    o[Feature.AMOUNT_TO_MEAN] = amount / max(F[row, L.S_AMT_MEAN], CENT) if has_history else NAN
    o[Feature.AMOUNT_TO_MAX] = amount / max(F[row, L.S_AMT_MAX], CENT) if has_history else NAN
    whole = round(amount)
    o[Feature.AMOUNT_IS_ROUND] = 1.0 if abs(amount - whole) < 0.005 and whole % 50 == 0 else 0.0
    o[Feature.AMOUNT_IS_SMALL] = 1.0 if amount < 2.0 else 0.0

    # exact short windows over the ring of recent transactions
    in_ring = min(int(n_prev), L.RING)
    below = 0
    c10 = c1h = c24 = 0
    s10 = s1h = s24 = 0.0
    category_bits = 0
    distinct_merchants = 0
    for m in range(in_ring):
        ring_amount = F[row, L.S_RING_AMT + m]
        if ring_amount < amount:
            below += 1
        age = now - F[row, L.S_RING_TIME + m]
        if age <= DAY:
            c24 += 1
            s24 += ring_amount
            category_bits |= 1 << int(F[row, L.S_RING_CAT + m])
            merchant = I[row, L.I_RING_MERCHANT + m]
            if merchant != 0:
                seen = False
                for p in range(m):
                    if I[row, L.I_RING_MERCHANT + p] == merchant and now - F[row, L.S_RING_TIME + p] <= DAY:
                        seen = True
                        break
                if not seen:
                    distinct_merchants += 1
            if age <= HOUR:
                c1h += 1
                s1h += ring_amount
                if age <= 10 * MINUTE:
                    c10 += 1
                    s10 += ring_amount
    distinct_categories = 0
    while category_bits:
        category_bits &= category_bits - 1
        distinct_categories += 1
    o[Feature.AMOUNT_PERCENTILE] = below / in_ring if in_ring > 0 else NAN
    o[Feature.COUNT_10M] = c10
    o[Feature.COUNT_1H] = c1h
    o[Feature.COUNT_24H] = c24
    o[Feature.SUM_10M] = s10
    o[Feature.SUM_1H] = s1h
    o[Feature.SUM_24H] = s24
    count_30d = _decayed(F[row, L.S_DC30], elapsed, TAU_30D)
    sum_30d = _decayed(F[row, L.S_DS30], elapsed, TAU_30D)
    count_7d = _decayed(F[row, L.S_DC7], elapsed, TAU_7D)
    sum_7d = _decayed(F[row, L.S_DS7], elapsed, TAU_7D)
    o[Feature.COUNT_7D] = count_7d
    o[Feature.SUM_7D] = sum_7d
    o[Feature.AMOUNT_TO_AVG_7D] = amount * count_7d / sum_7d if sum_7d > 0.0 else NAN
    o[Feature.AMOUNT_TO_AVG_30D] = amount * count_30d / sum_30d if sum_30d > 0.0 else NAN
    o[Feature.COUNT_30D] = count_30d
    o[Feature.SUM_30D] = sum_30d
    o[Feature.BURST_RATIO_1H] = c1h / max(count_30d / (30.0 * 24.0), 1.0 / 24.0)
    o[Feature.SPEND_RATIO_24H] = s24 / max(sum_30d / 30.0, 1.0)
    o[Feature.DISTINCT_MERCHANTS_24H] = distinct_merchants
    o[Feature.DISTINCT_CATEGORIES_24H] = distinct_categories

    # time since
    o[Feature.LOG_SECONDS_SINCE_LAST] = math.log1p(elapsed) if has_history else NAN
    o[Feature.LOG_SECONDS_SINCE_LAST_DECLINE] = _log_age(now, F[row, L.S_LAST_DECLINE_TIME])
    o[Feature.LOG_SECONDS_SINCE_LAST_DEPOSIT] = _log_age(now, F[row, L.S_LAST_DEPOSIT_TIME])
    o[Feature.LOG_SECONDS_SINCE_LAST_INTERNATIONAL] = _log_age(now, F[row, L.S_LAST_INTL_TIME])

    # novelty
    merchant = txi[i, L.TI_MERCHANT]
    if merchant != 0:
        j = _set_find(I, row, L.I_SET_MERCHANT, L.SET_MERCHANT_K, merchant)
        o[Feature.NEW_MERCHANT] = 1.0 if j < 0 else 0.0
        o[Feature.MERCHANT_VISITS] = F[row, L.S_SET_MERCHANT + 2 * L.SET_MERCHANT_K + j] if j >= 0 else 0.0
        last_visit = F[row, L.S_SET_MERCHANT + L.SET_MERCHANT_K + j] if j >= 0 else 0.0
        o[Feature.LOG_DAYS_SINCE_MERCHANT] = math.log1p(max(now - last_visit, 0.0) / DAY) if j >= 0 else NAN
    else:
        o[Feature.NEW_MERCHANT] = NAN
        o[Feature.MERCHANT_VISITS] = NAN
        o[Feature.LOG_DAYS_SINCE_MERCHANT] = NAN
    device = txi[i, L.TI_DEVICE]
    if device != 0:
        j = _set_find(I, row, L.I_SET_DEVICE, L.SET_DEVICE_K, device)
        o[Feature.NEW_DEVICE] = 1.0 if j < 0 else 0.0
        o[Feature.DEVICE_AGE_DAYS] = (
            min((now - F[row, L.S_SET_DEVICE + j]) / DAY, FIRST_SEEN_CAP_DAYS) if j >= 0 else 0.0
        )
    else:
        o[Feature.NEW_DEVICE] = NAN
        o[Feature.DEVICE_AGE_DAYS] = NAN
    o[Feature.DISTINCT_DEVICES_7D] = _set_distinct_since(
        I, F, row, L.I_SET_DEVICE, L.S_SET_DEVICE, L.SET_DEVICE_K, now - 7 * DAY
    )
    ip = txi[i, L.TI_IP]
    if ip != 0:
        o[Feature.NEW_IP] = 1.0 if _set_find(I, row, L.I_SET_IP, L.SET_IP_K, ip) < 0 else 0.0
        prefix = txi[i, L.TI_IP_PREFIX]
        o[Feature.NEW_IP_PREFIX] = (
            1.0 if _set_find(I, row, L.I_SET_IP_PREFIX, L.SET_IP_PREFIX_K, prefix) < 0 else 0.0
        )
    else:
        o[Feature.NEW_IP] = NAN
        o[Feature.NEW_IP_PREFIX] = NAN
    country = txi[i, L.TI_COUNTRY]
    if country != 0:
        o[Feature.NEW_COUNTRY] = (
            1.0 if _set_find(I, row, L.I_SET_COUNTRY, L.SET_COUNTRY_K, country) < 0 else 0.0
        )
    else:
        o[Feature.NEW_COUNTRY] = NAN
    o[Feature.DISTINCT_COUNTRIES_30D] = _set_distinct_since(
        I, F, row, L.I_SET_COUNTRY, L.S_SET_COUNTRY, L.SET_COUNTRY_K, now - 30 * DAY
    )
    counterparty = txi[i, L.TI_BENEFICIARY]
    if kind == L.TY_TRANSFER and counterparty != 0:
        j = _set_find(I, row, L.I_SET_BENEFICIARY, L.SET_BENEFICIARY_K, counterparty)
        o[Feature.NEW_BENEFICIARY] = 1.0 if j < 0 else 0.0
        o[Feature.BENEFICIARY_AGE_DAYS] = (
            min((now - F[row, L.S_SET_BENEFICIARY + j]) / DAY, FIRST_SEEN_CAP_DAYS) if j >= 0 else 0.0
        )
    else:
        o[Feature.NEW_BENEFICIARY] = NAN
        o[Feature.BENEFICIARY_AGE_DAYS] = NAN
    if has_history:
        o[Feature.NEW_CATEGORY] = 1.0 if F[row, L.S_CAT_COUNT + category] == 0.0 else 0.0
        o[Feature.CATEGORY_SHARE] = F[row, L.S_CAT_COUNT + category] / n_prev
        o[Feature.CHANNEL_SHARE] = F[row, L.S_CHAN_COUNT + channel] / n_prev
        o[Feature.TYPE_SHARE] = F[row, L.S_TYPE_COUNT + kind] / n_prev
    else:
        o[Feature.NEW_CATEGORY] = 1.0
        o[Feature.CATEGORY_SHARE] = NAN
        o[Feature.CHANNEL_SHARE] = NAN
        o[Feature.TYPE_SHARE] = NAN

    # geography
    lat = txf[i, L.TF_LAT]
    lon = txf[i, L.TF_LON]
    has_location = not (math.isnan(lat) or math.isnan(lon))
    o[Feature.HAS_LOCATION] = 1.0 if has_location else 0.0
    km_home = NAN
    km_last = NAN
    speed = NAN
    if has_location and F[row, L.S_HOME_N] > 0.0:
        km_home = _haversine_km(F[row, L.S_HOME_LAT], F[row, L.S_HOME_LON], lat, lon)
    if has_location and F[row, L.S_LAST_GEO_TIME] > 0.0:
        km_last = _haversine_km(F[row, L.S_LAST_LAT], F[row, L.S_LAST_LON], lat, lon)
        hours = max(now - F[row, L.S_LAST_GEO_TIME], MINUTE) / HOUR
        speed = km_last / hours
    o[Feature.KM_FROM_HOME] = km_home
    o[Feature.KM_FROM_LAST] = km_last
    o[Feature.IMPLIED_SPEED_KMH] = speed
    o[Feature.IMPOSSIBLE_TRAVEL] = (
        NAN if math.isnan(speed) else (1.0 if speed > IMPOSSIBLE_SPEED_KMH and km_last > 100.0 else 0.0)
    )
    o[Feature.HOME_DISTANCE_RATIO] = (
        km_home / (F[row, L.S_HOME_DIST_MEAN] + 5.0) if not math.isnan(km_home) else NAN
    )
    o[Feature.IS_INTERNATIONAL] = txf[i, L.TF_INTL]
    o[Feature.INTERNATIONAL_SHARE] = F[row, L.S_INTL_SHARE] if has_history else NAN

    # calendar
    hour = txf[i, L.TF_HOUR]
    if math.isnan(hour):
        hour = math.floor((now % DAY) / HOUR)
    days = int(math.floor(now / DAY))
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    day_of_month = _civil_day_of_month(days)
    angle = 2.0 * math.pi * hour / 24.0
    o[Feature.HOUR] = hour
    o[Feature.HOUR_SIN] = math.sin(angle)
    o[Feature.HOUR_COS] = math.cos(angle)
    o[Feature.IS_NIGHT] = 1.0 if hour < 6.0 else 0.0
    o[Feature.IS_WEEKEND] = 1.0 if weekday >= 5 else 0.0
    o[Feature.IS_PAYDAY_WINDOW] = 1.0 if day_of_month >= 25 or day_of_month == 1 else 0.0
    mean_sin = F[row, L.S_HOUR_SIN]
    mean_cos = F[row, L.S_HOUR_COS]
    if has_history and mean_sin * mean_sin + mean_cos * mean_cos > 1e-6:
        o[Feature.HOUR_DEVIATION] = (1.0 - math.cos(angle - math.atan2(mean_sin, mean_cos))) / 2.0
    else:
        o[Feature.HOUR_DEVIATION] = NAN
    o[Feature.NIGHT_SHARE] = F[row, L.S_NIGHT_SHARE] if has_history else NAN

    # channel, type, category
    o[Feature.CHANNEL_MOBILE_APP] = 1.0 if channel == L.CH_MOBILE_APP else 0.0
    o[Feature.CHANNEL_WEB] = 1.0 if channel == L.CH_WEB else 0.0
    o[Feature.CHANNEL_POS] = 1.0 if channel == L.CH_POS else 0.0
    o[Feature.CHANNEL_ATM] = 1.0 if channel == L.CH_ATM else 0.0
    o[Feature.CHANNEL_BRANCH_OR_PHONE] = 1.0 if channel == L.CH_BRANCH or channel == L.CH_PHONE else 0.0
    o[Feature.TYPE_PURCHASE] = 1.0 if kind == L.TY_PURCHASE else 0.0
    o[Feature.TYPE_TRANSFER] = 1.0 if kind == L.TY_TRANSFER else 0.0
    o[Feature.TYPE_WITHDRAWAL] = 1.0 if kind == L.TY_WITHDRAWAL else 0.0
    o[Feature.TYPE_PAYMENT] = 1.0 if kind == L.TY_PAYMENT else 0.0
    o[Feature.TYPE_DEPOSIT] = 1.0 if kind == L.TY_DEPOSIT else 0.0
    o[Feature.CATEGORY_CODE] = category
    o[Feature.HIGH_RISK_CATEGORY] = 1.0 if (L.HIGH_RISK_MASK >> category) & 1 else 0.0
    o[Feature.HIGH_RISK_SHARE] = F[row, L.S_HIGHRISK_SHARE] if has_history else NAN

    # account
    # The account's real age when the data has it; never "since first seen", which in a history that
    # starts on a fixed date is a clock. How long we have seen the customer is capped instead.
    opened = txf[i, L.TF_ACCOUNT_OPENED]
    if math.isnan(opened) and F[row, L.S_ACCOUNT_OPENED] > 0.0:
        opened = F[row, L.S_ACCOUNT_OPENED]
    o[Feature.ACCOUNT_AGE_DAYS] = NAN if math.isnan(opened) else max(now - opened, 0.0) / DAY
    o[Feature.DAYS_SINCE_FIRST_SEEN] = (
        min(max(now - F[row, L.S_FIRST_SEEN], 0.0) / DAY, FIRST_SEEN_CAP_DAYS) if has_history else 0.0
    )
    o[Feature.LOG_TX_TOTAL] = math.log1p(n_prev)
    o[Feature.IS_FIRST_TRANSACTION] = 0.0 if has_history else 1.0
    credential_change = txf[i, L.TF_CRED_CHANGE]
    if math.isnan(credential_change) and F[row, L.S_CRED_CHANGE] > 0.0:
        credential_change = F[row, L.S_CRED_CHANGE]
    if math.isnan(credential_change):
        o[Feature.DAYS_SINCE_CREDENTIAL_CHANGE] = NAN
        o[Feature.CREDENTIAL_CHANGED_24H] = 0.0
    else:
        days_since_change = max(now - credential_change, 0.0) / DAY
        o[Feature.DAYS_SINCE_CREDENTIAL_CHANGE] = days_since_change
        o[Feature.CREDENTIAL_CHANGED_24H] = 1.0 if days_since_change < 1.0 else 0.0

    # failed attempts and card testing
    o[Feature.IS_DECLINED] = NAN if auth == 0 else (0.0 if auth == L.AUTH_APPROVED else 1.0)
    o[Feature.DECLINES_1H] = _decayed(F[row, L.S_DECL_1H], elapsed, TAU_1H)
    o[Feature.DECLINES_24H] = _decayed(F[row, L.S_DECL_24H], elapsed, TAU_24H)
    o[Feature.INSUFFICIENT_FUNDS_24H] = _decayed(F[row, L.S_INSUFF_24H], elapsed, TAU_24H)
    o[Feature.SMALL_AMOUNTS_1H] = _decayed(F[row, L.S_SMALL_1H], elapsed, TAU_1H)
    last_decline = F[row, L.S_LAST_DECLINE_TIME]
    if last_decline > 0.0 and now - last_decline <= DAY and F[row, L.S_LAST_DECLINE_AMT] > 0.0:
        o[Feature.AMOUNT_TO_LAST_DECLINED] = amount / F[row, L.S_LAST_DECLINE_AMT]
    else:
        o[Feature.AMOUNT_TO_LAST_DECLINED] = NAN

    # transfers: fan-out and fan-in
    out_sum = _decayed(F[row, L.S_XOUT_SUM_24H], elapsed, TAU_24H)
    in_sum = _decayed(F[row, L.S_DEP_SUM_24H], elapsed, TAU_24H)
    o[Feature.TRANSFERS_OUT_24H] = _decayed(F[row, L.S_XOUT_24H], elapsed, TAU_24H)
    o[Feature.TRANSFER_SUM_OUT_24H] = out_sum
    o[Feature.DISTINCT_BENEFICIARIES_7D] = _set_distinct_since(
        I, F, row, L.I_SET_BENEFICIARY, L.S_SET_BENEFICIARY, L.SET_BENEFICIARY_K, now - 7 * DAY
    )
    o[Feature.DEPOSITS_IN_24H] = _decayed(F[row, L.S_DEP_24H], elapsed, TAU_24H)
    o[Feature.DEPOSIT_SUM_IN_24H] = in_sum
    o[Feature.DISTINCT_PAYERS_7D] = _set_distinct_since(
        I, F, row, L.I_SET_PAYER, L.S_SET_PAYER, L.SET_PAYER_K, now - 7 * DAY
    )
    outgoing_now = amount if kind == L.TY_TRANSFER or kind == L.TY_WITHDRAWAL else 0.0
    o[Feature.PASS_THROUGH_RATIO_24H] = (out_sum + outgoing_now) / (in_sum + 1.0)

    # risk from confirmed fraud labels known before now
    o[Feature.MERCHANT_FRAUD_LABELS] = _risk_at(risk_count, risk_time, 0, txi[i, L.TI_G_MERCHANT], now)
    o[Feature.TERMINAL_FRAUD_LABELS] = _risk_at(risk_count, risk_time, 1, txi[i, L.TI_G_TERMINAL], now)
    o[Feature.DEVICE_FRAUD_LABELS] = _risk_at(risk_count, risk_time, 2, txi[i, L.TI_G_DEVICE], now)
    o[Feature.IP_FRAUD_LABELS] = _risk_at(risk_count, risk_time, 3, txi[i, L.TI_G_IP], now)
    o[Feature.BENEFICIARY_FRAUD_LABELS] = _risk_at(risk_count, risk_time, 4, txi[i, L.TI_G_BENEFICIARY], now)
    if F[row, L.S_FRAUD_LABEL_TIME] > 0.0:
        o[Feature.CUSTOMER_FRAUD_LABELS] = _decayed(
            F[row, L.S_FRAUD_LABELS], now - F[row, L.S_FRAUD_LABEL_TIME], TAU_30D
        )
    else:
        o[Feature.CUSTOMER_FRAUD_LABELS] = 0.0


# --- the state update after the transaction ----------------------------------------------------------


@nb.njit(cache=True)
def _update(
    F: np.ndarray, I: np.ndarray, row: int, txf: np.ndarray, txi: np.ndarray, i: int, km_from_home: float
) -> None:
    now = txf[i, L.TF_TIME]
    amount = txf[i, L.TF_AMOUNT]
    log_amount = math.log1p(amount)
    n_prev = F[row, L.S_TX_TOTAL]
    n = n_prev + 1.0
    elapsed = max(now - F[row, L.S_LAST_TIME], 0.0) if n_prev > 0.0 else 0.0
    category = txi[i, L.TI_CATEGORY]
    channel = txi[i, L.TI_CHANNEL]
    kind = txi[i, L.TI_TYPE]
    auth = txi[i, L.TI_AUTH]
    declined = auth != 0 and auth != L.AUTH_APPROVED
    if n_prev == 0.0:
        F[row, L.S_FIRST_SEEN] = now

    # decayed aggregates (all decayed from LAST_TIME to now)
    e1h = math.exp(-elapsed / TAU_1H)
    e24 = math.exp(-elapsed / TAU_24H)
    e7 = math.exp(-elapsed / TAU_7D)
    e30 = math.exp(-elapsed / TAU_30D)
    F[row, L.S_DC7] = F[row, L.S_DC7] * e7 + 1.0
    F[row, L.S_DS7] = F[row, L.S_DS7] * e7 + amount
    F[row, L.S_DC30] = F[row, L.S_DC30] * e30 + 1.0
    F[row, L.S_DS30] = F[row, L.S_DS30] * e30 + amount
    F[row, L.S_DECL_1H] = F[row, L.S_DECL_1H] * e1h + (1.0 if declined else 0.0)
    F[row, L.S_DECL_24H] = F[row, L.S_DECL_24H] * e24 + (1.0 if declined else 0.0)
    F[row, L.S_INSUFF_24H] = F[row, L.S_INSUFF_24H] * e24 + (1.0 if auth == L.AUTH_INSUFFICIENT else 0.0)
    F[row, L.S_SMALL_1H] = F[row, L.S_SMALL_1H] * e1h + (1.0 if amount < 2.0 else 0.0)
    is_transfer = kind == L.TY_TRANSFER
    is_deposit = kind == L.TY_DEPOSIT
    F[row, L.S_XOUT_24H] = F[row, L.S_XOUT_24H] * e24 + (1.0 if is_transfer else 0.0)
    F[row, L.S_XOUT_SUM_24H] = F[row, L.S_XOUT_SUM_24H] * e24 + (amount if is_transfer else 0.0)
    F[row, L.S_DEP_24H] = F[row, L.S_DEP_24H] * e24 + (1.0 if is_deposit else 0.0)
    F[row, L.S_DEP_SUM_24H] = F[row, L.S_DEP_SUM_24H] * e24 + (amount if is_deposit else 0.0)

    # running means: exact for the first 50 transactions, then exponentially weighted
    alpha = max(1.0 / n, 0.02)
    delta = log_amount - F[row, L.S_LOGAMT_MEAN]
    F[row, L.S_LOGAMT_MEAN] += alpha * delta
    F[row, L.S_LOGAMT_VAR] = (1.0 - alpha) * (F[row, L.S_LOGAMT_VAR] + alpha * delta * delta)
    F[row, L.S_AMT_MEAN] += alpha * (amount - F[row, L.S_AMT_MEAN])
    F[row, L.S_AMT_MAX] = max(F[row, L.S_AMT_MAX], amount)
    hour = txf[i, L.TF_HOUR]
    if math.isnan(hour):
        hour = math.floor((now % DAY) / HOUR)
    angle = 2.0 * math.pi * hour / 24.0
    F[row, L.S_HOUR_SIN] += alpha * (math.sin(angle) - F[row, L.S_HOUR_SIN])
    F[row, L.S_HOUR_COS] += alpha * (math.cos(angle) - F[row, L.S_HOUR_COS])
    F[row, L.S_NIGHT_SHARE] += alpha * ((1.0 if hour < 6.0 else 0.0) - F[row, L.S_NIGHT_SHARE])
    high_risk = 1.0 if (L.HIGH_RISK_MASK >> category) & 1 else 0.0
    F[row, L.S_HIGHRISK_SHARE] += alpha * (high_risk - F[row, L.S_HIGHRISK_SHARE])
    F[row, L.S_INTL_SHARE] += alpha * (txf[i, L.TF_INTL] - F[row, L.S_INTL_SHARE])

    # last-event times
    if declined:
        F[row, L.S_LAST_DECLINE_TIME] = now
        F[row, L.S_LAST_DECLINE_AMT] = amount
    if is_deposit:
        F[row, L.S_LAST_DEPOSIT_TIME] = now
    if txf[i, L.TF_INTL] > 0.0:
        F[row, L.S_LAST_INTL_TIME] = now

    # geography: home is the running centre of located transactions near it (travel does not drag it)
    lat = txf[i, L.TF_LAT]
    lon = txf[i, L.TF_LON]
    if not (math.isnan(lat) or math.isnan(lon)):
        home_n = F[row, L.S_HOME_N]
        if home_n == 0.0:
            F[row, L.S_HOME_LAT] = lat
            F[row, L.S_HOME_LON] = lon
            F[row, L.S_HOME_N] = 1.0
        elif home_n < 5.0 or km_from_home < 300.0:
            home_alpha = max(1.0 / (home_n + 1.0), 0.02)
            F[row, L.S_HOME_LAT] += home_alpha * (lat - F[row, L.S_HOME_LAT])
            F[row, L.S_HOME_LON] += home_alpha * (lon - F[row, L.S_HOME_LON])
            F[row, L.S_HOME_N] = home_n + 1.0
        if not math.isnan(km_from_home):
            F[row, L.S_HOME_DIST_MEAN] += alpha * (km_from_home - F[row, L.S_HOME_DIST_MEAN])
        F[row, L.S_LAST_LAT] = lat
        F[row, L.S_LAST_LON] = lon
        F[row, L.S_LAST_GEO_TIME] = now

    # account facts reported by the channel
    if not math.isnan(txf[i, L.TF_ACCOUNT_OPENED]):
        F[row, L.S_ACCOUNT_OPENED] = txf[i, L.TF_ACCOUNT_OPENED]
    if not math.isnan(txf[i, L.TF_CRED_CHANGE]):
        F[row, L.S_CRED_CHANGE] = max(F[row, L.S_CRED_CHANGE], txf[i, L.TF_CRED_CHANGE])

    # counts by category, channel, type
    F[row, L.S_CAT_COUNT + category] += 1.0
    F[row, L.S_CHAN_COUNT + channel] += 1.0
    F[row, L.S_TYPE_COUNT + kind] += 1.0

    # ring of recent transactions
    position = int(F[row, L.S_RING_POS])
    F[row, L.S_RING_TIME + position] = now
    F[row, L.S_RING_AMT + position] = amount
    F[row, L.S_RING_CAT + position] = category
    I[row, L.I_RING_MERCHANT + position] = txi[i, L.TI_MERCHANT]
    F[row, L.S_RING_POS] = (position + 1) % L.RING

    # sets of things the customer has used
    if txi[i, L.TI_MERCHANT] != 0:
        _set_touch(
            I, F, row, L.I_SET_MERCHANT, L.S_SET_MERCHANT, L.SET_MERCHANT_K, txi[i, L.TI_MERCHANT], now
        )
    if txi[i, L.TI_DEVICE] != 0:
        _set_touch(I, F, row, L.I_SET_DEVICE, L.S_SET_DEVICE, L.SET_DEVICE_K, txi[i, L.TI_DEVICE], now)
    if txi[i, L.TI_IP] != 0:
        _set_touch(I, F, row, L.I_SET_IP, L.S_SET_IP, L.SET_IP_K, txi[i, L.TI_IP], now)
        _set_touch(
            I, F, row, L.I_SET_IP_PREFIX, L.S_SET_IP_PREFIX, L.SET_IP_PREFIX_K, txi[i, L.TI_IP_PREFIX], now
        )
    if txi[i, L.TI_COUNTRY] != 0:
        _set_touch(I, F, row, L.I_SET_COUNTRY, L.S_SET_COUNTRY, L.SET_COUNTRY_K, txi[i, L.TI_COUNTRY], now)
    counterparty = txi[i, L.TI_BENEFICIARY]
    if counterparty != 0 and is_transfer:
        _set_touch(
            I, F, row, L.I_SET_BENEFICIARY, L.S_SET_BENEFICIARY, L.SET_BENEFICIARY_K, counterparty, now
        )
    if counterparty != 0 and is_deposit:
        _set_touch(I, F, row, L.I_SET_PAYER, L.S_SET_PAYER, L.SET_PAYER_K, counterparty, now)

    F[row, L.S_TX_TOTAL] = n
    F[row, L.S_LAST_TIME] = max(F[row, L.S_LAST_TIME], now)


@nb.njit(cache=True)
def process_batch(
    txf: np.ndarray,
    txi: np.ndarray,
    floats: np.ndarray,
    ints: np.ndarray,
    labf: np.ndarray,
    labi: np.ndarray,
    risk_count: np.ndarray,
    risk_time: np.ndarray,
    entity_f: np.ndarray,
    entity_i: np.ndarray,
    qf: np.ndarray,
    qi: np.ndarray,
    queued: int,
    epoch: float,
    epoch_s: float,
    lag_epochs: int,
    label_delay_s: float,
    out: np.ndarray,
) -> tuple[int, int, float]:
    """Features for each transaction in order, updating the state.

    Labels (sorted by the time they became known) are applied just before the first transaction
    that happens after them; the ones known after the last transaction are left for the next call.
    Anonymous transactions (slot -1) get features from an empty history and update no customer.

    Entity events (transactions, and labels once applied) wait in the queue `qf`/`qi` until their
    epoch closes: a transaction reads the table as of the start of the epoch `lag_epochs` before its
    own (`FeatureConfig.read_epochs`), the first to read a later one closing the epochs before it.
    Returns (labels applied, events queued, the epoch the table stands at).
    """
    scratch_f = np.zeros((1, floats.shape[1]))
    scratch_i = np.zeros((1, ints.shape[1]), dtype=np.int64)
    applied = 0
    for i in range(txf.shape[0]):
        now = txf[i, L.TF_TIME]
        while applied < labf.shape[0] and labf[applied, L.LF_KNOWN_AT] < now:
            _apply_label(labf, labi, applied, floats, risk_count, risk_time)
            queued = _queue_label(labf, labi, applied, qf, qi, queued)
            applied += 1
        read_epoch = math.floor(now / epoch_s) - lag_epochs
        if read_epoch > epoch:
            queued = close_epoch(entity_f, entity_i, qf, qi, queued, read_epoch * epoch_s, label_delay_s)
            epoch = read_epoch
        slot = txi[i, L.TI_SLOT]
        if slot >= 0:
            _features(floats, ints, slot, txf, txi, i, risk_count, risk_time, out)
            _update(floats, ints, slot, txf, txi, i, out[i, Feature.KM_FROM_HOME])
        else:
            scratch_f[0, :] = 0.0
            scratch_i[0, :] = 0
            _features(scratch_f, scratch_i, 0, txf, txi, i, risk_count, risk_time, out)
        as_of = max(epoch, read_epoch) * epoch_s
        for table in range(N_ENTITY_TABLES):
            entity_features(
                entity_f,
                entity_i,
                txi[i, L.TI_E_MERCHANT + table],
                as_of,
                label_delay_s,
                out[i],
                ENTITY_FIRST + ENTITY_FEATURES_PER_TABLE * table,
            )
        qf[queued, L.QF_TIME] = now
        qf[queued, L.QF_FRAUD_TIME] = NAN
        for table in range(N_ENTITY_TABLES):
            qi[queued, L.QI_ENTITY + table] = txi[i, L.TI_E_MERCHANT + table]
        qi[queued, L.QI_CUSTOMER] = txi[i, L.TI_CUSTOMER_HASH]
        queued += 1
    return applied, queued, epoch


@nb.njit(cache=True)
def _queue_label(
    labf: np.ndarray, labi: np.ndarray, j: int, qf: np.ndarray, qi: np.ndarray, queued: int
) -> int:
    """Queue a label's entity part for the next epoch close (if it names any entity)."""
    named = False
    for table in range(N_ENTITY_TABLES):
        if labi[j, L.LI_E_MERCHANT + table] >= 0:
            named = True
    if not named:
        return queued
    qf[queued, L.QF_TIME] = labf[j, L.LF_KNOWN_AT]
    qf[queued, L.QF_FRAUD_TIME] = labf[j, L.LF_EVENT_TIME]
    for table in range(N_ENTITY_TABLES):
        qi[queued, L.QI_ENTITY + table] = labi[j, L.LI_E_MERCHANT + table]
    qi[queued, L.QI_CUSTOMER] = 0
    return queued + 1
