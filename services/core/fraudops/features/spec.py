"""The feature definition: every model input, its family and its meaning, in one enum.

`Feature` fixes both the names and the column order of the feature matrix; the compiled kernel
indexes its output with these members, so a name can never drift from its column. Bump
`FEATURE_VERSION` whenever a feature's meaning or the state layout changes: artifacts and
checkpoints record it and refuse to mix versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np

FEATURE_VERSION = 2

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
    AMOUNT_TO_AVG_7D = 8  # amount / the customer's average amount, decayed over 7 days
    AMOUNT_TO_AVG_30D = 9
    # -- velocity: exact windows over the last 32 transactions, decayed sums beyond ----------
    COUNT_10M = 10
    COUNT_1H = 11
    COUNT_24H = 12
    SUM_10M = 13
    SUM_1H = 14
    SUM_24H = 15
    COUNT_7D = 16  # exponentially decayed (tau = 7 days)
    SUM_7D = 17
    COUNT_30D = 18  # exponentially decayed (tau = 30 days)
    SUM_30D = 19
    BURST_RATIO_1H = 20  # count in the last hour / the customer's usual hourly rate
    SPEND_RATIO_24H = 21  # sum in the last 24 h / the customer's usual daily spend
    DISTINCT_MERCHANTS_24H = 22
    DISTINCT_CATEGORIES_24H = 23
    # -- time ----------------------------------------------------------------------------------
    LOG_SECONDS_SINCE_LAST = 24
    LOG_SECONDS_SINCE_LAST_DECLINE = 25
    LOG_SECONDS_SINCE_LAST_DEPOSIT = 26
    LOG_SECONDS_SINCE_LAST_INTERNATIONAL = 27
    # -- novelty: first time this customer uses it -----------------------------------------------
    NEW_MERCHANT = 28
    MERCHANT_VISITS = 29
    LOG_DAYS_SINCE_MERCHANT = 30
    NEW_DEVICE = 31
    DEVICE_AGE_DAYS = 32  # since first seen, capped at FIRST_SEEN_CAP_DAYS
    DISTINCT_DEVICES_7D = 33
    NEW_IP = 34
    NEW_IP_PREFIX = 35
    NEW_COUNTRY = 36
    DISTINCT_COUNTRIES_30D = 37
    NEW_BENEFICIARY = 38
    BENEFICIARY_AGE_DAYS = 39  # since first seen, capped at FIRST_SEEN_CAP_DAYS
    NEW_CATEGORY = 40
    CATEGORY_SHARE = 41  # share of the customer's past transactions in this category
    CHANNEL_SHARE = 42
    TYPE_SHARE = 43
    # -- geography -------------------------------------------------------------------------------
    HAS_LOCATION = 44
    KM_FROM_HOME = 45
    KM_FROM_LAST = 46
    IMPLIED_SPEED_KMH = 47
    IMPOSSIBLE_TRAVEL = 48  # faster than 900 km/h since the last located transaction
    HOME_DISTANCE_RATIO = 49  # km from home / the customer's usual km from home
    IS_INTERNATIONAL = 50
    INTERNATIONAL_SHARE = 51
    # -- calendar ---------------------------------------------------------------------------------
    HOUR = 52
    HOUR_SIN = 53
    HOUR_COS = 54
    IS_NIGHT = 55  # 00:00–05:59
    IS_WEEKEND = 56
    IS_PAYDAY_WINDOW = 57  # the 25th to the 1st, when salaries land
    HOUR_DEVIATION = 58  # circular distance from the customer's usual hour (0–1)
    NIGHT_SHARE = 59
    # -- channel, type and merchant category -----------------------------------------------------
    CHANNEL_MOBILE_APP = 60
    CHANNEL_WEB = 61
    CHANNEL_POS = 62
    CHANNEL_ATM = 63
    CHANNEL_BRANCH_OR_PHONE = 64
    TYPE_PURCHASE = 65
    TYPE_TRANSFER = 66
    TYPE_WITHDRAWAL = 67
    TYPE_PAYMENT = 68
    TYPE_DEPOSIT = 69
    CATEGORY_CODE = 70  # MerchantCategory ordinal (trees split it well)
    HIGH_RISK_CATEGORY = 71
    HIGH_RISK_SHARE = 72
    # -- account -----------------------------------------------------------------------------------
    ACCOUNT_AGE_DAYS = 73  # from account_opened_at; unknown (NaN) when the data does not say
    DAYS_SINCE_FIRST_SEEN = 74  # capped at FIRST_SEEN_CAP_DAYS: uncapped, it measures the history's start
    LOG_TX_TOTAL = 75
    IS_FIRST_TRANSACTION = 76
    DAYS_SINCE_CREDENTIAL_CHANGE = 77
    CREDENTIAL_CHANGED_24H = 78
    # -- failed attempts and card testing ------------------------------------------------------------
    IS_DECLINED = 79  # the issuer declined this attempt
    DECLINES_1H = 80  # decayed (tau = 1 h)
    DECLINES_24H = 81  # decayed (tau = 24 h)
    INSUFFICIENT_FUNDS_24H = 82
    SMALL_AMOUNTS_1H = 83
    AMOUNT_TO_LAST_DECLINED = 84
    # -- transfers: fan-out and fan-in --------------------------------------------------------------
    TRANSFERS_OUT_24H = 85
    TRANSFER_SUM_OUT_24H = 86
    DISTINCT_BENEFICIARIES_7D = 87
    DEPOSITS_IN_24H = 88
    DEPOSIT_SUM_IN_24H = 89
    DISTINCT_PAYERS_7D = 90
    PASS_THROUGH_RATIO_24H = 91  # money out / money in over 24 h: layering moves it straight on
    # -- risk learned from confirmed fraud labels (only labels known before this transaction) --------
    MERCHANT_FRAUD_LABELS = 92  # decayed (tau = 30 days)
    TERMINAL_FRAUD_LABELS = 93
    DEVICE_FRAUD_LABELS = 94
    IP_FRAUD_LABELS = 95
    BENEFICIARY_FRAUD_LABELS = 96
    CUSTOMER_FRAUD_LABELS = 97
    # -- entity risk: per merchant, terminal, device, IP and beneficiary, from the entity table ----------
    # As of the start of the transaction's entity epoch (see docs/entity-features.md): transactions in
    # decayed windows, the label-delayed fraud rate (known frauds / transactions old enough for their
    # label to be known, both in the same 30-day decayed window) and distinct customers over 7 days.
    MERCHANT_TX_1D = 98
    MERCHANT_TX_7D = 99
    MERCHANT_TX_30D = 100
    MERCHANT_MATURED_TX_30D = 101
    MERCHANT_FRAUD_RATE_30D = 102
    MERCHANT_CUSTOMERS_7D = 103
    TERMINAL_TX_1D = 104
    TERMINAL_TX_7D = 105
    TERMINAL_TX_30D = 106
    TERMINAL_MATURED_TX_30D = 107
    TERMINAL_FRAUD_RATE_30D = 108
    TERMINAL_CUSTOMERS_7D = 109
    DEVICE_TX_1D = 110
    DEVICE_TX_7D = 111
    DEVICE_TX_30D = 112
    DEVICE_MATURED_TX_30D = 113
    DEVICE_FRAUD_RATE_30D = 114
    DEVICE_CUSTOMERS_7D = 115
    IP_TX_1D = 116
    IP_TX_7D = 117
    IP_TX_30D = 118
    IP_MATURED_TX_30D = 119
    IP_FRAUD_RATE_30D = 120
    IP_CUSTOMERS_7D = 121
    BENEFICIARY_TX_1D = 122
    BENEFICIARY_TX_7D = 123
    BENEFICIARY_TX_30D = 124
    BENEFICIARY_MATURED_TX_30D = 125
    BENEFICIARY_FRAUD_RATE_30D = 126
    BENEFICIARY_CUSTOMERS_7D = 127


FEATURE_NAMES: tuple[str, ...] = tuple(member.name.lower() for member in Feature)
N_FEATURES = len(FEATURE_NAMES)

#: Families, for reports and for "skipped because the data has no such column".
FEATURE_FAMILIES: dict[str, tuple[Feature, ...]] = {
    "amount": tuple(Feature(i) for i in range(Feature.AMOUNT, Feature.AMOUNT_TO_AVG_30D + 1)),
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
    "entity_risk": tuple(
        Feature(i) for i in range(Feature.MERCHANT_TX_1D, Feature.BENEFICIARY_CUSTOMERS_7D + 1)
    ),
}

#: The entity tables, in the order of the entity features and of the encoded batch's entity columns.
ENTITY_TABLES = ("merchant", "terminal", "device", "ip", "beneficiary")
#: Features per entity table, in column order from `<TABLE>_TX_1D`.
ENTITY_FEATURES_PER_TABLE = 6

#: Ages measured "since first seen" stop growing here. A history that starts on a fixed date makes
#: an uncapped first-seen age a clock (everyone is "new" at the start); training's burn-in is at
#: least this long, so no trained row sees an age that the history's start cut short.
FIRST_SEEN_CAP_DAYS = 30.0
#: Label delays the entity table supports: its day ring holds this many days plus one.
MAX_ENTITY_LABEL_DELAY_DAYS = 9.0
#: The most epochs an entity read may lag its transaction (FeatureConfig.entity_lag_epochs).
MAX_ENTITY_LAG_EPOCHS = 10


@dataclass(frozen=True)
class FeatureConfig:
    """Parameters of the feature definition that a deployment may tune (recorded in artifacts)."""

    label_delay_s: float = 7 * DAY  # when a label has no known-at time: event time + this delay
    #: The entity table is published once per epoch: every transaction sees the entity state as of
    #: the start of an epoch (transactions and labels before it), online and offline alike.
    entity_epoch_s: float = 60.0
    #: Which epoch's start: the transaction's own epoch minus this many. At 0, the first records of
    #: every epoch wait for the entity-state component to see that epoch begin on every partition and
    #: publish it (measured: up to 2.4 s each minute at 2,000 tx/s); at 1 the table they read was
    #: published an epoch earlier, and the entity features are at most two epochs old.
    #: Artifacts from before the field were trained with 0 (`from_dict`).
    entity_lag_epochs: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.label_delay_s <= MAX_ENTITY_LABEL_DELAY_DAYS * DAY:
            raise ValueError(
                f"label delay must be between 0 and {MAX_ENTITY_LABEL_DELAY_DAYS:g} days (the entity "
                f"table's day ring); got {self.label_delay_s / DAY:g} days"
            )
        if not 1.0 <= self.entity_epoch_s <= HOUR:
            raise ValueError(f"entity epoch must be between 1 s and 1 h; got {self.entity_epoch_s:g} s")
        if self.entity_lag_epochs not in range(MAX_ENTITY_LAG_EPOCHS + 1):
            raise ValueError(
                f"entity lag must be a whole number of epochs from 0 to {MAX_ENTITY_LAG_EPOCHS}; "
                f"got {self.entity_lag_epochs!r}"
            )

    def as_dict(self) -> dict[str, float | int]:
        return {
            "label_delay_s": self.label_delay_s,
            "entity_epoch_s": self.entity_epoch_s,
            "entity_lag_epochs": self.entity_lag_epochs,
        }

    @classmethod
    def from_dict(cls, recorded: Mapping[str, Any]) -> FeatureConfig:
        """The configuration an artifact recorded (`as_dict`); what it does not name keeps its default
        (artifacts older than the field), except the entity lag: artifacts older than it read with none."""
        unknown = set(recorded) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"unknown feature configuration {sorted(unknown)}: this build knows {sorted(cls.__dataclass_fields__)}"
            )
        values: dict[str, Any] = {"entity_lag_epochs": 0, **recorded}
        lag = values.pop("entity_lag_epochs")
        if float(lag) != int(lag):
            raise ValueError(f"entity lag must be a whole number of epochs; got {lag!r}")
        return cls(**{name: float(value) for name, value in values.items()}, entity_lag_epochs=int(lag))

    def read_epochs(self, times: np.ndarray) -> np.ndarray:
        """The epoch whose start each transaction at `times` (epoch seconds) reads the entity table at."""
        return np.floor(np.asarray(times) / self.entity_epoch_s).astype(np.int64) - self.entity_lag_epochs

    def same_table(self, other: FeatureConfig) -> bool:
        """Whether the entity table kept under `other` is the table kept under these settings (the lag only
        says which epoch of it a transaction reads)."""
        return (self.label_delay_s, self.entity_epoch_s) == (other.label_delay_s, other.entity_epoch_s)
