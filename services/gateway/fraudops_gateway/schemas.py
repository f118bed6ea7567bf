"""The gateway's request and response bodies (the public API contract, with OpenAPI examples).

Request bodies are validated by pydantic's JSON validator in strict mode: exactly the JSON types
the OpenAPI document states (no "12" for a number, no 0 for a date-time), so the document is the
contract. The transaction bodies are `fraudops.schema` types, whose rules are what the platform can
store (amounts in whole cents, zero included; IP addresses in address characters).

Every time the API reads is RFC 3339 text with a UTC offset whose year, as written, is from 1970
to 2199: the document states it as a pattern and the server refuses any other text (pydantic
alone would also take "1700000000" or a time without an offset). The event time is also at most a
day ahead of the gateway's clock, a bound that moves with the clock and so has no JSON Schema
keyword: the document gives it its own format, `event-time`, described in words.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    WithJsonSchema,
)

from fraudops.extras import ExtraFields
from fraudops.schema import EXTRAS_FIELD, LegacyTransaction, Transaction, plausible_event_time

#: A transaction id as the schema allows it (path parameters are checked the same way).
TRANSACTION_ID_PATTERN = r"^[A-Za-z0-9_.:\-]+$"
#: RFC 3339 date-time (the `date-time` of JSON Schema) whose year is 1970 to 2199 as written, with an offset
#: of at most 15:59 either way: PostgreSQL refuses larger ones (real ones span -12:00 to +14:00).
DATE_TIME_PATTERN = (
    r"^(19[7-9][0-9]|2[01][0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]"
    r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-](0[0-9]|1[0-5]):[0-5][0-9])$"
)
_DATE_TIME = re.compile(DATE_TIME_PATTERN)
EVENT_TIME_FORMAT = "event-time"


def _rfc3339(value: Any) -> Any:
    """Date-time text the document allows, parsed (strict validation takes no text once a validator ran)."""
    if not isinstance(value, str):
        return value  # strict validation refuses it with its own message
    if _DATE_TIME.match(value) is None:
        raise ValueError(
            "must be an RFC 3339 date-time with a UTC offset of at most 15:59, e.g. "
            "2026-11-28T21:14:05Z, with a year (as written) from 1970 to 2199"
        )
    try:  # what the pattern admits, fromisoformat reads (t and z in upper case), in about a microsecond
        return datetime.fromisoformat(value.upper())
    except ValueError as exc:  # the shape is right, the date is not (February 30th)
        raise ValueError(f"not a date: {exc}") from None


_RFC3339_DATE_TIME = Annotated[
    datetime,
    BeforeValidator(_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": DATE_TIME_PATTERN}),
]
_EVENT_TIME = Annotated[
    datetime,
    BeforeValidator(_rfc3339),
    AfterValidator(plausible_event_time),
    WithJsonSchema(
        {
            "type": "string",
            "format": EVENT_TIME_FORMAT,
            "description": "When the transaction happened (`event-time`): an RFC 3339 date-time with a UTC offset of at "
            "most 15:59, e.g. 2026-11-28T21:14:05Z, its year (as written) from 1970, and at most one day "
            "after the gateway's clock. Default: when the gateway receives it.",
        }
    ),
]


def _integral(value: Any) -> Any:
    """JSON Schema's integer: 17.0 is one (strict validation alone would refuse it; true stays refused)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


_HOUR = Annotated[int, Field(ge=0, le=23), BeforeValidator(_integral)]


class TransactionRequest(Transaction):
    """A transaction as `/predict` accepts it: the platform schema, storable as it is."""

    # The schema's rule "latitude and longitude together", stated in JSON Schema too.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"properties": {"latitude": {"type": "null"}, "longitude": {"type": "null"}}},
                {
                    "required": ["latitude", "longitude"],
                    "properties": {"latitude": {"type": "number"}, "longitude": {"type": "number"}},
                },
            ]
        }
    )

    event_time: _EVENT_TIME = Field(default_factory=lambda: datetime.now(UTC))
    credential_change_at: _RFC3339_DATE_TIME | None = Field(
        None, description="Last password / phone / e-mail change on the account known to the channel."
    )
    account_opened_at: _RFC3339_DATE_TIME | None = Field(None, description="When the account was opened.")
    hour_of_day: _HOUR | None = Field(
        None, description="Local hour, when the client knows it better than event_time."
    )


class LegacyTransactionRequest(LegacyTransaction):
    """The old prototype's minimal payload."""

    hour_of_day: _HOUR


def _payload_kind(value: Any) -> str:
    """The legacy payload is recognised by its `source` field (the full schema calls it `channel`)."""
    if isinstance(value, dict):
        return "legacy" if "source" in value else "full"
    return "legacy" if isinstance(value, LegacyTransaction) else "full"


PredictRequest = Annotated[
    Annotated[TransactionRequest, Tag("full")] | Annotated[LegacyTransactionRequest, Tag("legacy")],
    Discriminator(_payload_kind),
]

FULL_EXAMPLE = {
    "transaction_id": "8d5e0c2f6b0a4c55a1f1f0a3d2b7c901",
    "event_time": "2026-11-28T21:14:05Z",
    "customer_id": "cust-000123",
    "card_id": "card-000123-1",
    "merchant_id": "m-04411",
    "merchant_category": "electronics",
    "amount": 899.0,
    "currency": "EUR",
    "channel": "WEB",
    "transaction_type": "PURCHASE",
    "is_international": False,
    "country": "DE",
    "device_id": "dev-9a8b7c",
    "ip_address": "203.0.113.17",
}
LEGACY_EXAMPLE = {
    "amount": 250.0,
    "merchant_category": "electronics",
    "source": "WEB",
    "is_international": False,
    "hour_of_day": 23,
}


def as_transaction(payload: Transaction | LegacyTransaction) -> Transaction:
    """The payload as a platform `Transaction` (the legacy payload normalised).

    Feature encoding works on nanosecond timestamps (years 1678–2261): the years allowed above
    keep every time inside, and the schema itself refuses event times more than a day ahead.
    """
    return payload.to_transaction() if isinstance(payload, LegacyTransaction) else payload


class ReasonCode(BaseModel):
    feature: str = Field(..., description="Feature name (see the model metadata).")
    value: float | None = Field(None, description="The feature's value for this transaction.")
    contribution: float = Field(
        ..., description="Push towards fraud, in log-odds (XGBoost's feature contributions)."
    )


class PredictResponse(BaseModel):
    transaction_id: str
    fraud_probability: float = Field(..., ge=0, le=1)
    is_fraud: bool
    threshold: float
    model_version: str
    variant: str = Field(..., description="The routed variant that decided (stable, canary, …).")
    reasons: list[ReasonCode] = Field(
        default_factory=list, description="Top contributions; given for fraud decisions or on request."
    )
    prediction_time_ms: float = Field(..., description="Features, routing and scoring, in the gateway.")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transactions: list[PredictRequest] = Field(
        ..., min_length=1, description="At most GATEWAY_MAX_BATCH items."
    )


class BatchResponse(BaseModel):
    results: list[PredictResponse]
    prediction_time_ms: float


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transaction_id: Annotated[str, Field(min_length=1, max_length=64, pattern=TRANSACTION_ID_PATTERN)]
    is_fraud: bool = Field(..., description="Confirmed fraud (true) or confirmed legitimate (false).")
    label_known_at: _RFC3339_DATE_TIME | None = Field(
        None, description="When the label became known (default: now)."
    )
    source: Annotated[str, Field(max_length=32, pattern=r"^[a-z_]+$")] = "api"


class FeedbackResponse(BaseModel):
    transaction_id: str
    is_fraud: bool
    label_known_at: datetime
    stored: bool = Field(..., description="False when the same label was already stored (idempotent).")


class StoredDecision(BaseModel):
    transaction_id: str
    fraud_probability: float
    is_fraud: bool
    threshold: float
    model_name: str
    model_version: str
    variant: str
    reasons: list[ReasonCode]
    latency_ms: float | None
    source: str
    decided_at: datetime
    shadow_scores: dict[str, float] = Field(default_factory=dict, description="Shadow variants' scores.")
    label: bool | None = Field(None, description="The confirmed label, when feedback arrived.")


class FieldError(BaseModel):
    field: str = Field(..., description="Dotted path of the offending field, e.g. `amount`.")
    reason: str = Field(..., description="The rule it broke.")


class ErrorResponse(BaseModel):
    error: str
    errors: list[FieldError] = Field(default_factory=list)


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


def document_extra_fields(components: dict[str, Any], fields: ExtraFields) -> None:
    """Name the served models' extra inputs, each with its kind, in the document's transaction schema.

    Validation stays one schema for every deployment (`fraudops.schema.Extras`: any extra field of a
    valid shape is taken and stored); the kinds are checked after it (`Decisions`), and stated here.
    """
    if not fields:
        return
    extras = components["TransactionRequest"]["properties"][EXTRAS_FIELD]
    extras["anyOf"][0]["properties"] = fields.json_schema()


#: The request bodies, each validated in one pass from JSON (strict) and documented under this name.
REQUEST_BODIES: dict[str, TypeAdapter[Any]] = {
    "PredictRequest": TypeAdapter(PredictRequest),
    "BatchRequest": TypeAdapter(BatchRequest),
    "FeedbackRequest": TypeAdapter(FeedbackRequest),
}
