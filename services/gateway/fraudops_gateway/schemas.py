"""The gateway's request and response bodies (the public API contract, with OpenAPI examples)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fraudops.schema import LegacyTransaction, Transaction
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag


def _payload_kind(value: Any) -> str:
    """The legacy payload is recognised by its `source` field (the full schema calls it `channel`)."""
    if isinstance(value, dict):
        return "legacy" if "source" in value else "full"
    return "legacy" if isinstance(value, LegacyTransaction) else "full"


PredictRequest = Annotated[
    Annotated[Transaction, Tag("full")] | Annotated[LegacyTransaction, Tag("legacy")],
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


class ReasonCode(BaseModel):
    feature: str = Field(..., description="Feature name (see the model metadata).")
    value: float | None = Field(None, description="The feature's value for this transaction.")
    contribution: float = Field(..., description="Push towards fraud, in log-odds (TreeSHAP).")


class PredictResponse(BaseModel):
    transaction_id: str
    fraud_probability: float = Field(..., ge=0, le=1)
    is_fraud: bool
    threshold: float
    model_version: str
    variant: str = Field(..., description="The routed variant that decided (stable, canary, …).")
    reasons: list[ReasonCode] = Field(default_factory=list,
                                      description="Top contributions; given for fraud decisions or on request.")
    prediction_time_ms: float


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transactions: list[PredictRequest] = Field(..., min_length=1, description="At most GATEWAY_MAX_BATCH items.")


class BatchResponse(BaseModel):
    results: list[PredictResponse]
    prediction_time_ms: float


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transaction_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
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
