"""Errors as HTTP answers: the one place that maps fraudops' exception tree and bad input to statuses.

A 4xx says what was wrong with the request. A 5xx says only what the caller can do (retry, or
report it): the error's own text names hosts, databases and internals, so it goes to the log.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import TypeAdapter, ValidationError

from fraudops.errors import FraudopsError, NotFoundError, RejectedInputError, RetryableError
from fraudops.schema import Transaction
from fraudops_gateway import metrics
from fraudops_gateway.schemas import ErrorResponse, FieldError

log = logging.getLogger(__name__)
INVALID_REQUEST = "invalid request"
_JSON_TYPES = ("application/json", "+json")


class Refused(Exception):
    """Answer the request with this status and body (bad input found before any work was done)."""

    def __init__(self, status: int, error: ErrorResponse, headers: dict[str, str] | None = None) -> None:
        super().__init__(error.error)
        self.status = status
        self.error = error
        self.headers = headers or {}


def http_error(exc: FraudopsError | Refused) -> tuple[int, ErrorResponse, dict[str, str]]:
    """Status, body and headers for an error raised on purpose."""
    if isinstance(exc, Refused):
        return exc.status, exc.error, exc.headers
    if isinstance(exc, RejectedInputError):
        return 422, invalid_request([FieldError(field=exc.field, reason=exc.reason)]), {}
    if isinstance(exc, NotFoundError):
        return 404, ErrorResponse(error=str(exc)), {}
    if isinstance(exc, RetryableError):
        retry_after_s = max(1, round(exc.delay_s))
        log.warning("answered 503: a dependency is unavailable", extra={"error": str(exc)})
        return (
            503,
            ErrorResponse(error=f"temporarily unavailable; retry in {retry_after_s} s"),
            {"Retry-After": str(retry_after_s)},
        )
    log.error("answered 500", exc_info=exc)
    metrics.INTERNAL_ERRORS.inc()
    return 500, internal_error(), {}


def internal_error() -> ErrorResponse:
    """The body of every 500: the log has the traceback, the caller gets nothing internal."""
    return ErrorResponse(error="internal error; it has been logged")


def invalid_request(errors: list[FieldError]) -> ErrorResponse:
    metrics.REJECTED.labels("invalid").inc()
    return ErrorResponse(error=INVALID_REQUEST, errors=errors)


def field_errors(problems: list[dict[str, Any]], drop: tuple[str, ...] = ()) -> list[FieldError]:
    """Pydantic's errors as `field: rule`, with the field path as the client wrote it.

    `drop` removes location parts that are not in the payload (FastAPI's `path` / `query` markers);
    the union tags pydantic adds (`full` / `legacy`) always go.
    """
    errors = []
    for problem in problems:
        if problem["type"] == "json_invalid":
            detail = problem.get("ctx", {}).get("error", problem["msg"])
            errors.append(FieldError(field="body", reason=f"invalid JSON: {detail}"))
            continue
        location = [str(part) for part in problem["loc"] if part not in (*drop, "full", "legacy")]
        reason = problem["msg"]
        if reason.startswith("Value error, "):
            # a rule over several fields (the schema's model validator) names its field first
            first = reason.removeprefix("Value error, ").split(" ", 1)[0]
            if first in Transaction.model_fields and location[-1:] != [first]:
                location.append(first)
        errors.append(FieldError(field=".".join(location) or "body", reason=reason))
    return errors


def parse_json_body(adapter: TypeAdapter[Any], body: bytes, content_type: str | None) -> Any:
    """The body validated against `adapter` straight from JSON, strictly; `Refused` (422) otherwise."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if not media_type.endswith(_JSON_TYPES):
        raise Refused(
            422,
            invalid_request(
                [FieldError(field="body", reason="must be JSON, sent with Content-Type: application/json")]
            ),
        )
    try:
        return adapter.validate_json(body, strict=True)
    except ValidationError as exc:
        raise Refused(
            422, invalid_request(field_errors(exc.errors(include_url=False, include_input=False)))
        ) from exc
