"""Memory layout of the per-customer state and of an encoded batch (column offsets as constants).

Per-customer state is a struct of arrays: one float64 row and one int64 row per customer slot.
Everything a feature needs is bounded: decayed aggregates, a ring of the last `RING` transactions,
and small least-recently-used sets of the merchants, devices, IPs, countries and counterparties a
customer has used. The compiled kernel reads these module constants as compile-time constants.
"""

from __future__ import annotations

from fraudops.schema import HIGH_RISK_CATEGORIES, AuthResult, Channel, MerchantCategory, TransactionType

RING = 32
N_CATEGORIES = len(MerchantCategory)
N_CHANNELS = len(Channel)
N_TYPES = len(TransactionType)


class _Columns:
    """Hands out consecutive column offsets, so the layout below reads as a list of names."""

    def __init__(self) -> None:
        self.width = 0

    def take(self, count: int = 1) -> int:
        start, self.width = self.width, self.width + count
        return start


_floats = _Columns()
_ints = _Columns()

# --- per-customer float state -------------------------------------------------------------------
S_FIRST_SEEN = _floats.take()
S_LAST_TIME = _floats.take()
S_TX_TOTAL = _floats.take()
S_DC7 = _floats.take()
S_DS7 = _floats.take()
S_DC30 = _floats.take()
S_DS30 = _floats.take()
S_LOGAMT_MEAN = _floats.take()
S_LOGAMT_VAR = _floats.take()
S_AMT_MEAN = _floats.take()
S_AMT_MAX = _floats.take()
S_NIGHT_SHARE = _floats.take()
S_HIGHRISK_SHARE = _floats.take()
S_INTL_SHARE = _floats.take()
S_HOUR_SIN = _floats.take()
S_HOUR_COS = _floats.take()
S_DECL_1H = _floats.take()
S_DECL_24H = _floats.take()
S_INSUFF_24H = _floats.take()
S_SMALL_1H = _floats.take()
S_LAST_DECLINE_TIME = _floats.take()
S_LAST_DECLINE_AMT = _floats.take()
S_XOUT_24H = _floats.take()
S_XOUT_SUM_24H = _floats.take()
S_DEP_24H = _floats.take()
S_DEP_SUM_24H = _floats.take()
S_LAST_DEPOSIT_TIME = _floats.take()
S_LAST_INTL_TIME = _floats.take()
S_LAST_LAT = _floats.take()
S_LAST_LON = _floats.take()
S_LAST_GEO_TIME = _floats.take()
S_HOME_LAT = _floats.take()
S_HOME_LON = _floats.take()
S_HOME_N = _floats.take()
S_HOME_DIST_MEAN = _floats.take()
S_ACCOUNT_OPENED = _floats.take()
S_CRED_CHANGE = _floats.take()
S_FRAUD_LABELS = _floats.take()
S_FRAUD_LABEL_TIME = _floats.take()
S_RING_POS = _floats.take()
S_CAT_COUNT = _floats.take(N_CATEGORIES)
S_CHAN_COUNT = _floats.take(N_CHANNELS)
S_TYPE_COUNT = _floats.take(N_TYPES)
S_RING_TIME = _floats.take(RING)
S_RING_AMT = _floats.take(RING)
S_RING_CAT = _floats.take(RING)

# int state: the merchant hash of each ring entry, then the hashes of each set
I_RING_MERCHANT = _ints.take(RING)

# Least-recently-used sets: K entries, each a hash (int state) and first/last seen and a count (float state).
SET_MERCHANT_K = 16
I_SET_MERCHANT = _ints.take(SET_MERCHANT_K)
S_SET_MERCHANT = _floats.take(3 * SET_MERCHANT_K)
SET_DEVICE_K = 6
I_SET_DEVICE = _ints.take(SET_DEVICE_K)
S_SET_DEVICE = _floats.take(3 * SET_DEVICE_K)
SET_IP_K = 8
I_SET_IP = _ints.take(SET_IP_K)
S_SET_IP = _floats.take(3 * SET_IP_K)
SET_IP_PREFIX_K = 8
I_SET_IP_PREFIX = _ints.take(SET_IP_PREFIX_K)
S_SET_IP_PREFIX = _floats.take(3 * SET_IP_PREFIX_K)
SET_COUNTRY_K = 6
I_SET_COUNTRY = _ints.take(SET_COUNTRY_K)
S_SET_COUNTRY = _floats.take(3 * SET_COUNTRY_K)
SET_BENEFICIARY_K = 12
I_SET_BENEFICIARY = _ints.take(SET_BENEFICIARY_K)
S_SET_BENEFICIARY = _floats.take(3 * SET_BENEFICIARY_K)
SET_PAYER_K = 12
I_SET_PAYER = _ints.take(SET_PAYER_K)
S_SET_PAYER = _floats.take(3 * SET_PAYER_K)

N_FLOAT_STATE = _floats.width
N_INT_STATE = _ints.width

# --- per-entity state (one row per merchant, terminal, device, IP or beneficiary) -----------------
# Decayed transaction counts, then the label-delayed part: a ring of the last ENTITY_DAYS days
# (transactions, known frauds, and a 64-bit bitmap of the customers seen that day), and the days
# that are old enough for their labels to be known folded into decayed "matured" totals.
ENTITY_DAYS = 10
_entity_floats = _Columns()
_entity_ints = _Columns()
E_SEEN = _entity_floats.take()  # 1 once the entity had an event
E_TX_1D = _entity_floats.take()
E_TX_7D = _entity_floats.take()
E_TX_30D = _entity_floats.take()
E_TX_TIME = _entity_floats.take()  # when the decayed counts were last brought up to date
E_MATURED_TX = _entity_floats.take()  # decayed (tau = 30 days) from each folded day's end
E_MATURED_FRAUD = _entity_floats.take()
E_MATURED_TIME = _entity_floats.take()  # the end of the last folded day
E_LAST_DAY = _entity_floats.take()  # the newest day in the ring (days since the epoch)
E_FOLDED_DAY = _entity_floats.take()  # days up to this one are in the matured totals
E_RING_TX = _entity_floats.take(ENTITY_DAYS)
E_RING_FRAUD = _entity_floats.take(ENTITY_DAYS)
EI_RING_CUSTOMERS = _entity_ints.take(ENTITY_DAYS)
N_ENTITY_FLOAT = _entity_floats.width
N_ENTITY_INT = _entity_ints.width

# --- entity events waiting for the epoch to close: transactions and fraud labels in arrival order ------
# float columns: when (transaction time or label known-at), the labelled transaction's time (NaN for
# a transaction); int columns: the entity rows of the five tables (-1 = none), the customer's hash.
QF_TIME, QF_FRAUD_TIME = range(2)
N_QF = 2
QI_ENTITY = 0
QI_CUSTOMER = 5
N_QI = 6

# --- an encoded batch of transactions -----------------------------------------------------------
# float columns
TF_TIME, TF_AMOUNT, TF_INTL, TF_LAT, TF_LON, TF_HOUR, TF_CRED_CHANGE, TF_ACCOUNT_OPENED = range(8)
N_TXF = 8
# int columns: the customer slot (-1 = anonymous), codes, string hashes (0 = missing), and the
# slots of the entities in the label-risk tables (-1 = no label seen)
# and the rows of the five entities in the entity table (-1 = none), and the customer's hash
(
    TI_SLOT,
    TI_CATEGORY,
    TI_CHANNEL,
    TI_TYPE,
    TI_AUTH,
    TI_WEEKDAY,
    TI_DAY_OF_MONTH,
    TI_COUNTRY,
    TI_DEVICE,
    TI_IP,
    TI_IP_PREFIX,
    TI_MERCHANT,
    TI_BENEFICIARY,
    TI_G_MERCHANT,
    TI_G_TERMINAL,
    TI_G_DEVICE,
    TI_G_IP,
    TI_G_BENEFICIARY,
    TI_E_MERCHANT,
    TI_E_TERMINAL,
    TI_E_DEVICE,
    TI_E_IP,
    TI_E_BENEFICIARY,
    TI_CUSTOMER_HASH,
) = range(24)
N_TXI = 24

# --- fraud-label events: float column 0 is when the label became known, 1 the transaction's time -------
LF_KNOWN_AT, LF_EVENT_TIME = range(2)
N_LF = 2
(
    LI_SLOT,
    LI_G_MERCHANT,
    LI_G_TERMINAL,
    LI_G_DEVICE,
    LI_G_IP,
    LI_G_BENEFICIARY,
    LI_E_MERCHANT,
    LI_E_TERMINAL,
    LI_E_DEVICE,
    LI_E_IP,
    LI_E_BENEFICIARY,
) = range(11)
N_LI = 11
#: label-risk tables, in the order of the TI_G_* / LI_G_* columns
RISK_TABLES = ("merchant", "terminal", "device", "ip", "beneficiary")

# --- codes ----------------------------------------------------------------------------------------
AUTH_CODES: dict[AuthResult | None, int] = {None: 0, **{result: i + 1 for i, result in enumerate(AuthResult)}}
AUTH_APPROVED = AUTH_CODES[AuthResult.APPROVED]
AUTH_INSUFFICIENT = AUTH_CODES[AuthResult.DECLINED_INSUFFICIENT_FUNDS]
CATEGORY_CODES = {category: i for i, category in enumerate(MerchantCategory)}
CHANNEL_CODES = {channel: i for i, channel in enumerate(Channel)}
TYPE_CODES = {kind: i for i, kind in enumerate(TransactionType)}
CH_MOBILE_APP = CHANNEL_CODES[Channel.MOBILE_APP]
CH_WEB = CHANNEL_CODES[Channel.WEB]
CH_POS = CHANNEL_CODES[Channel.POS]
CH_ATM = CHANNEL_CODES[Channel.ATM]
TY_PURCHASE = TYPE_CODES[TransactionType.PURCHASE]
TY_TRANSFER = TYPE_CODES[TransactionType.TRANSFER]
TY_WITHDRAWAL = TYPE_CODES[TransactionType.WITHDRAWAL]
TY_PAYMENT = TYPE_CODES[TransactionType.PAYMENT]
TY_DEPOSIT = TYPE_CODES[TransactionType.DEPOSIT]

#: Bit mask of the high-risk merchant category codes (bit = category code).
HIGH_RISK_MASK = sum(1 << CATEGORY_CODES[category] for category in HIGH_RISK_CATEGORIES)
CH_BRANCH = CHANNEL_CODES[Channel.BRANCH]
CH_PHONE = CHANNEL_CODES[Channel.PHONE]
