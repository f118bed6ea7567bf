"""The transaction schema, defined once and imported by every component.

`Transaction` is the canonical record: what the simulator produces, what travels through Kafka,
what the consumer and the gateway score and what PostgreSQL stores. `LegacyTransaction` is the
old prototype's minimal payload, accepted by the API and normalised into a `Transaction`.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

SCHEMA_VERSION = 1


class _CaseInsensitive(StrEnum):
    """Accepts any letter case (`web` → WEB); called only for non-canonical values, so free on the hot path."""

    @classmethod
    def _missing_(cls, value: object) -> _CaseInsensitive | None:
        if isinstance(value, str):
            for member in cls:
                if member.value.lower() == value.lower():
                    return member
        return None


class Channel(_CaseInsensitive):
    """Where the transaction was initiated."""

    MOBILE_APP = "MOBILE_APP"
    WEB = "WEB"
    POS = "POS"
    ATM = "ATM"
    BRANCH = "BRANCH"
    PHONE = "PHONE"


class TransactionType(_CaseInsensitive):
    PURCHASE = "PURCHASE"
    TRANSFER = "TRANSFER"
    WITHDRAWAL = "WITHDRAWAL"
    PAYMENT = "PAYMENT"
    DEPOSIT = "DEPOSIT"
    REFUND = "REFUND"


class AuthResult(_CaseInsensitive):
    """The issuer's authorisation outcome for this attempt, when known (declines feed card-testing features)."""

    APPROVED = "APPROVED"
    DECLINED_INSUFFICIENT_FUNDS = "DECLINED_INSUFFICIENT_FUNDS"
    DECLINED_WRONG_PIN = "DECLINED_WRONG_PIN"
    DECLINED_INVALID_CARD = "DECLINED_INVALID_CARD"
    DECLINED_OTHER = "DECLINED_OTHER"


class MerchantCategory(_CaseInsensitive):
    """Merchant category groups (coarse MCC families). Unknown values map to OTHER in features."""

    GROCERY = "grocery"
    RESTAURANT = "restaurant"
    FUEL = "fuel"
    RETAIL = "retail"
    ELECTRONICS = "electronics"
    TRAVEL = "travel"
    HOTEL = "hotel"
    ENTERTAINMENT = "entertainment"
    UTILITIES = "utilities"
    HEALTHCARE = "healthcare"
    ONLINE_MARKETPLACE = "online_marketplace"
    DIGITAL_GOODS = "digital_goods"
    JEWELRY = "jewelry"
    GAMBLING = "gambling"
    GIFT_CARDS = "gift_cards"
    CRYPTO = "crypto"
    MONEY_TRANSFER = "money_transfer"
    CASH = "cash"
    P2P = "p2p"
    OTHER = "other"


#: Categories the industry treats as high risk for fraud and cash-out.
HIGH_RISK_CATEGORIES = frozenset(
    {
        MerchantCategory.GAMBLING,
        MerchantCategory.GIFT_CARDS,
        MerchantCategory.CRYPTO,
        MerchantCategory.MONEY_TRANSFER,
        MerchantCategory.JEWELRY,
        MerchantCategory.DIGITAL_GOODS,
    }
)

MAX_AMOUNT = 10_000_000.0
#: How far (in cents) a binary float may sit from a whole number of cents and still be that number:
#: 0.1 + 0.2 is 30 cents; 0.001 is a tenth of a cent and refused.
CENT_TOLERANCE = 1e-4
#: Event times lie between 1970 (features count seconds since then) and a day ahead.
EARLIEST_EVENT_TIME = datetime(1970, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE_S = 86_400
#: Other times (account opened, credentials changed) lie between 1970 and 2200: features encode times
#: as nanoseconds (years 1678-2261), and a date outside the window is a data error, not a history.
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)
_ID = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
_COUNTRY = Annotated[str, Field(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$")]
#: An IP address (v4, v6, with a zone or a prefix) in address characters only: no control character
#: and no NUL, which PostgreSQL's text columns refuse.
IP_ADDRESS_PATTERN = r"^[0-9A-Za-z.:%_/\-]+$"


def _storable_amount(amount: float) -> float:
    """Amounts are stored in cents (numeric(14, 2)), never negative: a whole number of cents, normalised to it.

    Rounding here, before storage and features, means the stored amount, the online features and a
    training replay of the stored rows all see the same number.
    """
    if amount < 0:
        raise PydanticCustomError(
            "negative_amount",
            "amounts are never negative; a refund is transaction_type REFUND with a positive amount",
        )
    cents = amount * 100
    whole = round(cents)
    if abs(cents - whole) > CENT_TOLERANCE:
        raise PydanticCustomError(
            "whole_cents",
            "amounts are stored in cents; {amount} has a fraction of a cent",
            {"amount": amount},
        )
    return whole / 100


def _utc(value: datetime) -> datetime:
    """Naive times are UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def plausible_event_time(value: datetime) -> datetime:
    """An event time from 1970 to one day after this clock (naive times are UTC)."""
    value = _utc(value)
    if value < EARLIEST_EVENT_TIME:
        raise PydanticCustomError("event_time_too_early", "event_time is before 1970-01-01")
    if value.timestamp() > time.time() + FUTURE_TOLERANCE_S:
        raise PydanticCustomError("event_time_in_future", "event_time is more than a day in the future")
    return value


def _plausible_time(value: datetime) -> datetime:
    value = _utc(value)
    if not EARLIEST_EVENT_TIME <= value < LATEST_TIME:
        raise PydanticCustomError("time_out_of_range", "must be between 1970-01-01 and 2200-01-01")
    return value


#: An amount as the platform stores it: finite, 0 to MAX_AMOUNT, in whole cents. Zero is a real
#: amount (card-verification authorisations are $0.00, and a card-testing signal); a negative one is
#: refused: a refund is a transaction of type REFUND with a positive amount.
Amount = Annotated[
    float,
    Field(
        le=MAX_AMOUNT,
        allow_inf_nan=False,
        json_schema_extra={"minimum": 0, "multipleOf": 0.01},
        description="Amount in `currency`, in whole cents, 0 to 10,000,000. Zero is a "
        "card verification; a refund is `transaction_type` REFUND with a positive amount.",
    ),
    AfterValidator(_storable_amount),
]
_TIME = Annotated[datetime, AfterValidator(_plausible_time)]


#: The field that carries a bank's own columns (`fraudops.extras`): model inputs we did not foresee.
EXTRAS_FIELD = "extras"
MAX_EXTRA_FIELDS = 32
MAX_EXTRA_TEXT = 128
#: Names an extra field may have: they become API fields, JSON keys and model input names (`extra_<name>`).
EXTRA_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
EXTRA_NAME = re.compile(EXTRA_NAME_PATTERN.removesuffix("$") + r"\Z")
#: The largest magnitude a float32 model input holds: models read every input as a 32-bit float.
FLOAT32_MAX = 3.4028234663852886e38
#: C0 and C1 control characters and DEL: never part of a category, and PostgreSQL's jsonb refuses NUL.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
EXTRA_TEXT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
EXTRA_NUMBER_SCHEMA = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
EXTRA_TEXT_SCHEMA = {"type": "string", "maxLength": MAX_EXTRA_TEXT, "pattern": EXTRA_TEXT_PATTERN}


def extra_name(name: Any) -> str:
    if not isinstance(name, str) or EXTRA_NAME.match(name) is None:
        raise PydanticCustomError(
            "extra_name",
            "extra field names are 1 to 64 letters, digits and underscores, not starting with a digit",
        )
    return name


def extra_value(value: Any) -> str | float | None:
    """An extra field's value as the platform stores and encodes it: text, a finite number, or null.

    Numbers must fit a float32 (models read every input as one); booleans are not numbers here (send
    0/1, or text for a category); text is at most MAX_EXTRA_TEXT characters without control characters.
    """
    if value is None:
        return None
    kind = type(value)
    if kind is str:
        if len(value) > MAX_EXTRA_TEXT:
            raise PydanticCustomError(
                "extra_text_too_long", "text is at most {limit} characters", {"limit": MAX_EXTRA_TEXT}
            )
        if CONTROL_CHARACTERS.search(value):
            raise PydanticCustomError("extra_text_control", "text must not contain control characters")
        return value  # as sent: categories are trimmed and case-folded when encoded, as in training
    if kind is int or kind is float:
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number) or abs(number) > FLOAT32_MAX:
            raise PydanticCustomError(
                "extra_number_range", "must be a finite number of at most 3.4e38 in size (a 32-bit float)"
            )
        return number
    raise PydanticCustomError(
        "extra_type", "must be text, a number or null, not {kind}", {"kind": type(value).__name__}
    )


_EXTRA_VALUE_SCHEMA = {"anyOf": [EXTRA_TEXT_SCHEMA, EXTRA_NUMBER_SCHEMA, {"type": "null"}]}
#: A bank's own fields: a flat object of text, numbers and nulls. Validated by plain functions (one clear
#: error per field, no union of messages) and documented by hand: JSON Schema's `propertyNames` and
#: `additionalProperties` state the rules exactly, where pydantic's `patternProperties` would not.
Extras = Annotated[
    dict[
        Annotated[str, PlainValidator(extra_name)],
        Annotated[str | float | None, PlainValidator(extra_value), WithJsonSchema(_EXTRA_VALUE_SCHEMA)],
    ]
    | None,
    Field(max_length=MAX_EXTRA_FIELDS),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "object",
                    "propertyNames": {"pattern": EXTRA_NAME_PATTERN},
                    "additionalProperties": _EXTRA_VALUE_SCHEMA,
                    "maxProperties": MAX_EXTRA_FIELDS,
                },
                {"type": "null"},
            ],
            "default": None,
            "description": "A bank's own fields beyond this schema (MCC, POS entry mode, 3-D Secure result, "
            "...): the inputs of models trained with `--extra-numeric` / `--extra-categorical`, and stored "
            "with the transaction either way. Names: letters, digits and underscores; values: text (at most "
            f"{MAX_EXTRA_TEXT} characters, no control characters), a finite number, or null. A field "
            "left out or null is a missing value, as an empty cell is in training.",
        }
    ),
]


def new_transaction_id() -> str:
    return uuid.uuid4().hex


class Transaction(BaseModel):
    """One card or account transaction as the platform sees it (all times UTC)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    transaction_id: _ID = Field(
        default_factory=new_transaction_id, description="Unique id; the idempotency key."
    )
    event_time: Annotated[datetime, AfterValidator(plausible_event_time)] = Field(
        default_factory=lambda: datetime.now(UTC),
        description="When the transaction happened (ISO 8601 with offset; naive times are taken as UTC), "
        "from 1970 to a day ahead.",
    )
    customer_id: _ID | None = Field(None, description="The customer; per-customer features need it.")
    account_id: _ID | None = None
    card_id: _ID | None = None
    merchant_id: _ID | None = None
    merchant_category: MerchantCategory = MerchantCategory.OTHER
    terminal_id: _ID | None = Field(None, description="POS terminal or ATM.")
    amount: Amount
    currency: str = Field("EUR", min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")
    channel: Channel = Channel.POS
    transaction_type: TransactionType = TransactionType.PURCHASE
    auth_result: AuthResult | None = None
    is_international: bool = False
    country: _COUNTRY | None = Field(None, description="ISO 3166-1 alpha-2 country of the transaction.")
    latitude: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False)
    longitude: float | None = Field(
        None,
        ge=-180,
        le=180,
        allow_inf_nan=False,
        validate_default=True,
        description="Given together with latitude.",
    )
    device_id: _ID | None = None
    ip_address: str | None = Field(None, max_length=45, pattern=IP_ADDRESS_PATTERN)
    beneficiary_id: _ID | None = Field(
        None, description="Counterparty: the payee of an outgoing transfer, the payer of an incoming deposit."
    )
    credential_change_at: _TIME | None = Field(
        None, description="Last password / phone / e-mail change on the account known to the channel."
    )
    account_opened_at: _TIME | None = Field(
        None, description="When the account was opened (from the core system)."
    )
    hour_of_day: int | None = Field(
        None, ge=0, le=23, description="Local hour, when the client knows it better than event_time."
    )
    extras: Extras = None

    # Field validators, so that an error names its field (the DLQ's `dlq.field`, the API's 422). Only the
    # gateway and the stream's slow path pay for them: the stream's fast path checks the same rules batch-wide.
    @field_validator("longitude")
    @classmethod
    def _with_latitude(cls, longitude: float | None, info: ValidationInfo) -> float | None:
        if "latitude" in info.data and (info.data["latitude"] is None) is not (longitude is None):
            raise PydanticCustomError("coordinates_together", "latitude and longitude must be given together")
        return longitude

    @property
    def local_hour(self) -> int:
        return self.hour_of_day if self.hour_of_day is not None else self.event_time.hour


class LegacyTransaction(BaseModel):
    """The old prototype's minimal payload, still accepted by `/predict`."""

    model_config = ConfigDict(extra="forbid")

    amount: Amount
    merchant_category: MerchantCategory
    source: Channel = Field(..., description="The channel, by its old name.")
    is_international: bool
    hour_of_day: int = Field(..., ge=0, le=23)

    def to_transaction(self) -> Transaction:
        return Transaction(
            amount=self.amount,
            merchant_category=self.merchant_category,
            channel=self.source,
            is_international=self.is_international,
            hour_of_day=self.hour_of_day,
        )


#: Columns of a labelled history (simulator output, training input) beyond the Transaction fields.
LABEL_COLUMNS = ("is_fraud", "fraud_pattern", "label_available_at")

#: The built-in Transaction fields in a stable order (file columns, database columns); `extras` holds the rest.
TRANSACTION_FIELDS: tuple[str, ...] = tuple(name for name in Transaction.model_fields if name != EXTRAS_FIELD)
