"""The feature definition: every model input, its family and its meaning, in one enum.

`Feature` fixes both the names and the column order of the feature matrix; the compiled kernel
indexes its output with these members, so a name can never drift from its column. Bump
`FEATURE_VERSION` whenever a feature's meaning or the state layout changes: artifacts and
checkpoints record it and refuse to mix versions.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

FEATURE_VERSION = 1

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0


class Feature(IntEnum):
    # -- amount and amount against the customer's own history --------------------------------
    AMOUNT = 0
    LOG_AMOUNT = 1
    AMOUNT_ZSCORE = 2  # (log amount - EW mean) / EW std of the customer's past log amounts
    AMOUNT_TO_MEAN = 3  # amount / EW mean amount
    AMOUNT_TO_MAX = 4  # amount / largest past amount
    AMOUNT_PERCENTILE = 5  # share of the last 32 amounts below this one
    AMOUNT_IS_ROUND = 6  # a multiple of 50 with no cents
    AMOUNT_IS_SMALL = 7  # under 2.00: card-testing probes
    # -- velocity: exact windows over the last 32 transactions, decayed sums beyond ----------
    COUNT_10M = 8
    COUNT_1H = 9
    COUNT_24H = 10
    SUM_10M = 11
    SUM_1H = 12
    SUM_24H = 13
    COUNT_7D = 14  # exponentially decayed (tau = 7 days)
    SUM_7D = 15
    COUNT_30D = 16  # exponentially decayed (tau = 30 days)
    SUM_30D = 17
    BURST_RATIO_1H = 18  # count in the last hour / the customer's usual hourly rate
    SPEND_RATIO_24H = 19  # sum in the last 24 h / the customer's usual daily spend
    DISTINCT_MERCHANTS_24H = 20
    DISTINCT_CATEGORIES_24H = 21
    # -- time ----------------------------------------------------------------------------------
    LOG_SECONDS_SINCE_LAST = 22
    LOG_SECONDS_SINCE_LAST_DECLINE = 23
    LOG_SECONDS_SINCE_LAST_DEPOSIT = 24
    LOG_SECONDS_SINCE_LAST_INTERNATIONAL = 25
    # -- novelty: first time this customer uses it -----------------------------------------------
    NEW_MERCHANT = 26
    MERCHANT_VISITS = 27
    LOG_DAYS_SINCE_MERCHANT = 28
    NEW_DEVICE = 29
    DEVICE_AGE_DAYS = 30
    DISTINCT_DEVICES_7D = 31
    NEW_IP = 32
    NEW_IP_PREFIX = 33
    NEW_COUNTRY = 34
    DISTINCT_COUNTRIES_30D = 35
    NEW_BENEFICIARY = 36
    BENEFICIARY_AGE_DAYS = 37
    NEW_CATEGORY = 38
    CATEGORY_SHARE = 39  # share of the customer's past transactions in this category
    CHANNEL_SHARE = 40
    TYPE_SHARE = 41
    # -- geography -------------------------------------------------------------------------------
    HAS_LOCATION = 42
    KM_FROM_HOME = 43
    KM_FROM_LAST = 44
    IMPLIED_SPEED_KMH = 45
    IMPOSSIBLE_TRAVEL = 46  # faster than 900 km/h since the last located transaction
    HOME_DISTANCE_RATIO = 47  # km from home / the customer's usual km from home
    IS_INTERNATIONAL = 48
    INTERNATIONAL_SHARE = 49
    # -- calendar ---------------------------------------------------------------------------------
    HOUR = 50
    HOUR_SIN = 51
    HOUR_COS = 52
    IS_NIGHT = 53  # 00:00–05:59
    IS_WEEKEND = 54
    DAY_OF_MONTH = 55
    IS_PAYDAY_WINDOW = 56  # the 25th to the 1st, when salaries land
    HOUR_DEVIATION = 57  # circular distance from the customer's usual hour (0–1)
    NIGHT_SHARE = 58
    # -- channel, type and merchant category -----------------------------------------------------
    CHANNEL_MOBILE_APP = 59
    CHANNEL_WEB = 60
    CHANNEL_POS = 61
    CHANNEL_ATM = 62
    CHANNEL_BRANCH_OR_PHONE = 63
    TYPE_PURCHASE = 64
    TYPE_TRANSFER = 65
    TYPE_WITHDRAWAL = 66
    TYPE_PAYMENT = 67
    TYPE_DEPOSIT = 68
    CATEGORY_CODE = 69  # MerchantCategory ordinal (trees split it well)
    HIGH_RISK_CATEGORY = 70
    HIGH_RISK_SHARE = 71
    # -- account -----------------------------------------------------------------------------------
    ACCOUNT_AGE_DAYS = 72  # from account_opened_at when given, else since first seen
    LOG_TX_TOTAL = 73
    IS_FIRST_TRANSACTION = 74
    DAYS_SINCE_CREDENTIAL_CHANGE = 75
    CREDENTIAL_CHANGED_24H = 76
    # -- failed attempts and card testing ------------------------------------------------------------
    IS_DECLINED = 77  # the issuer declined this attempt
    DECLINES_1H = 78  # decayed (tau = 1 h)
    DECLINES_24H = 79  # decayed (tau = 24 h)
    INSUFFICIENT_FUNDS_24H = 80
    SMALL_AMOUNTS_1H = 81
    AMOUNT_TO_LAST_DECLINED = 82
    # -- transfers: fan-out and fan-in --------------------------------------------------------------
    TRANSFERS_OUT_24H = 83
    TRANSFER_SUM_OUT_24H = 84
    DISTINCT_BENEFICIARIES_7D = 85
    DEPOSITS_IN_24H = 86
    DEPOSIT_SUM_IN_24H = 87
    DISTINCT_PAYERS_7D = 88
    PASS_THROUGH_RATIO_24H = 89  # money out / money in over 24 h: layering moves it straight on
    # -- risk learned from confirmed fraud labels (only labels known before this transaction) --------
    MERCHANT_FRAUD_LABELS = 90  # decayed (tau = 30 days)
    TERMINAL_FRAUD_LABELS = 91
    DEVICE_FRAUD_LABELS = 92
    IP_FRAUD_LABELS = 93
    BENEFICIARY_FRAUD_LABELS = 94
    CUSTOMER_FRAUD_LABELS = 95


FEATURE_NAMES: tuple[str, ...] = tuple(member.name.lower() for member in Feature)
N_FEATURES = len(FEATURE_NAMES)

#: Families, for reports and for "skipped because the data has no such column".
FEATURE_FAMILIES: dict[str, tuple[Feature, ...]] = {
    "amount": tuple(Feature(i) for i in range(Feature.AMOUNT, Feature.AMOUNT_IS_SMALL + 1)),
    "velocity": tuple(Feature(i) for i in range(Feature.COUNT_10M, Feature.DISTINCT_CATEGORIES_24H + 1)),
    "time": tuple(
        Feature(i)
        for i in range(Feature.LOG_SECONDS_SINCE_LAST, Feature.LOG_SECONDS_SINCE_LAST_INTERNATIONAL + 1)
    ),
    "novelty": tuple(Feature(i) for i in range(Feature.NEW_MERCHANT, Feature.TYPE_SHARE + 1)),
    "geography": tuple(Feature(i) for i in range(Feature.HAS_LOCATION, Feature.INTERNATIONAL_SHARE + 1)),
    "calendar": tuple(Feature(i) for i in range(Feature.HOUR, Feature.NIGHT_SHARE + 1)),
    "channel_type_category": tuple(
        Feature(i) for i in range(Feature.CHANNEL_MOBILE_APP, Feature.HIGH_RISK_SHARE + 1)
    ),
    "account": tuple(Feature(i) for i in range(Feature.ACCOUNT_AGE_DAYS, Feature.CREDENTIAL_CHANGED_24H + 1)),
    "card_testing": tuple(
        Feature(i) for i in range(Feature.IS_DECLINED, Feature.AMOUNT_TO_LAST_DECLINED + 1)
    ),
    "transfers": tuple(
        Feature(i) for i in range(Feature.TRANSFERS_OUT_24H, Feature.PASS_THROUGH_RATIO_24H + 1)
    ),
    "label_risk": tuple(
        Feature(i) for i in range(Feature.MERCHANT_FRAUD_LABELS, Feature.CUSTOMER_FRAUD_LABELS + 1)
    ),
}


@dataclass(frozen=True)
class FeatureConfig:
    """Parameters of the feature definition that a deployment may tune (recorded in artifacts)."""

    label_delay_s: float = 7 * DAY  # when a label has no known-at time: event time + this delay

    def as_dict(self) -> dict[str, float]:
        return {"label_delay_s": self.label_delay_s}
