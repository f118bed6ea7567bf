"""The transaction schema, defined once and imported by every component.

`Transaction` is the canonical record: what the simulator produces, what travels through Kafka,
what the consumer and the gateway score and what PostgreSQL stores. `LegacyTransaction` is the
old prototype's minimal payload, accepted by the API and normalised into a `Transaction`.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
_ID = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
_COUNTRY = Annotated[str, Field(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$")]


def new_transaction_id() -> str:
    return uuid.uuid4().hex


class Transaction(BaseModel):
    """One card or account transaction as the platform sees it (all times UTC)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    transaction_id: _ID = Field(
        default_factory=new_transaction_id, description="Unique id; the idempotency key."
    )
    event_time: datetime = Field(
        default_factory=lambda: datetime.now(UTC),
        description="When the transaction happened (ISO 8601 with offset; naive times are taken as UTC).",
    )
    customer_id: _ID | None = Field(None, description="The customer; per-customer features need it.")
    account_id: _ID | None = None
    card_id: _ID | None = None
    merchant_id: _ID | None = None
    merchant_category: MerchantCategory = MerchantCategory.OTHER
    terminal_id: _ID | None = Field(None, description="POS terminal or ATM.")
    amount: float = Field(
        ..., gt=0, le=MAX_AMOUNT, allow_inf_nan=False, description="Positive, finite amount in `currency`."
    )
    currency: str = Field("EUR", min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")
    channel: Channel = Channel.POS
    transaction_type: TransactionType = TransactionType.PURCHASE
    auth_result: AuthResult | None = None
    is_international: bool = False
    country: _COUNTRY | None = Field(None, description="ISO 3166-1 alpha-2 country of the transaction.")
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    device_id: _ID | None = None
    ip_address: str | None = Field(None, max_length=45)
    beneficiary_id: _ID | None = Field(
        None, description="Counterparty: the payee of an outgoing transfer, the payer of an incoming deposit."
    )
    credential_change_at: datetime | None = Field(
        None, description="Last password / phone / e-mail change on the account known to the channel."
    )
    account_opened_at: datetime | None = Field(
        None, description="When the account was opened (from the core system)."
    )
    hour_of_day: int | None = Field(
        None, ge=0, le=23, description="Local hour, when the client knows it better than event_time."
    )

    # One after-validator (not one per field) keeps validation in pydantic-core: the stream validates
    # tens of thousands of records a second.
    @model_validator(mode="after")
    def _coherent(self) -> Transaction:
        event_time = self.event_time
        if event_time.tzinfo is None:  # naive times are UTC
            event_time = event_time.replace(tzinfo=UTC)
            object.__setattr__(self, "event_time", event_time)
        for name in ("credential_change_at", "account_opened_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=UTC))
        if (self.latitude is None) is not (self.longitude is None):
            raise ValueError("latitude and longitude must be given together")
        if event_time.timestamp() > time.time() + 86400:
            raise ValueError("event_time is more than a day in the future")
        return self

    @property
    def local_hour(self) -> int:
        return self.hour_of_day if self.hour_of_day is not None else self.event_time.hour


class LegacyTransaction(BaseModel):
    """The old prototype's minimal payload, still accepted by `/predict`."""

    model_config = ConfigDict(extra="forbid")

    amount: float = Field(..., gt=0, le=MAX_AMOUNT, allow_inf_nan=False)
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

#: The Transaction fields in a stable order (file columns, database columns).
TRANSACTION_FIELDS: tuple[str, ...] = tuple(Transaction.model_fields)
