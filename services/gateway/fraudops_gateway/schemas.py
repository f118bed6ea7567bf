"""The gateway's request and response bodies (the public API contract, with OpenAPI examples).

Request bodies are validated by pydantic's JSON validator in strict mode: exactly the JSON types
the OpenAPI document states (no "12" for a number, no 0 for a date-time), so the document is the
contract. The transaction bodies are `fraudops.schema` types, whose rules are what the platform can
store (amounts in whole cents, zero included; IP addresses in address characters).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, TypeAdapter

from fraudops.errors import RejectedInputError
from fraudops.schema import LegacyTransaction, Transaction

#: A transaction id as the schema allows it (path parameters are checked the same way).
TRANSACTION_ID_PATTERN = r"^[A-Za-z0-9_.:\-]+$"
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _integral(value: Any) -> Any:
    """JSON Schema's integer: 17.0 is one (strict validation alone would refuse it; true stays refused)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


_HOUR = Annotated[int, Field(ge=0, le=23), BeforeValidator(_integral)]


class TransactionRequest(Transaction):
    """A transaction as `/predict` accepts it: the platform schema, storable as it is."""

    # The schema's rule "latitude and longitude together", stated in JSON Schema too.
    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"properties": {"latitude": {"type": "null"}, "longitude": {"type": "null"}}},
        {"required": ["latitude", "longitude"],
         "properties": {"latitude": {"type": "number"}, "longitude": {"type": "number"}}},
    ]})

    hour_of_day: _HOUR | None = Field(None, description="Local hour, when the client knows it better than "
                                                        "event_time.")


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
LEGACY_EXAMPLE = {"amount": 250.0, "merchant_category": "electronics", "source": "WEB", "is_international": False,
                  "hour_of_day": 23}


def as_transaction(payload: Transaction | LegacyTransaction) -> Transaction:
    """The payload as a platform `Transaction`, after the rules JSON Schema cannot state.

    Feature encoding works on nanosecond timestamps (years 1678–2261), so times are held to a
    window around now; the schema itself already refuses event times more than a day ahead.
    """
    transaction = payload.to_transaction() if isinstance(payload, LegacyTransaction) else payload
    if transaction.event_time < _EARLIEST:
        raise RejectedInputError("event_time", "must not be before 1970-01-01T00:00:00Z")
    for name in ("credential_change_at", "account_opened_at"):
        value = getattr(transaction, name)
        if value is not None and not _EARLIEST <= value < _LATEST:
            raise RejectedInputError(name, "must be between 1970-01-01 and 2200-01-01")
    return transaction


class ReasonCode(BaseModel):
    feature: str = Field(..., description="Feature name (see the model metadata).")
    value: float | None = Field(None, description="The feature's value for this transaction.")
    contribution: float = Field(..., description="Push towards fraud, in log-odds (XGBoost's feature "
                                                 "contributions).")


class PredictResponse(BaseModel):
    transaction_id: str
    fraud_probability: float = Field(..., ge=0, le=1)
    is_fraud: bool
    threshold: float
    model_version: str
    variant: str = Field(..., description="The routed variant that decided (stable, canary, …).")
    reasons: list[ReasonCode] = Field(default_factory=list,
                                      description="Top contributions; given for fraud decisions or on request.")
    prediction_time_ms: float = Field(..., description="Features, routing and scoring, in the gateway.")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transactions: list[PredictRequest] = Field(..., min_length=1, description="At most GATEWAY_MAX_BATCH items.")


class BatchResponse(BaseModel):
    results: list[PredictResponse]
    prediction_time_ms: float


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transaction_id: Annotated[str, Field(min_length=1, max_length=64, pattern=TRANSACTION_ID_PATTERN)]
    is_fraud: bool = Field(..., description="Confirmed fraud (true) or confirmed legitimate (false).")
    label_known_at: datetime | None = Field(None, description="When the label became known (default: now).")
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


#: The request bodies, each validated in one pass from JSON (strict) and documented under this name.
REQUEST_BODIES: dict[str, TypeAdapter[Any]] = {
    "PredictRequest": TypeAdapter(PredictRequest),
    "BatchRequest": TypeAdapter(BatchRequest),
    "FeedbackRequest": TypeAdapter(FeedbackRequest),
}
