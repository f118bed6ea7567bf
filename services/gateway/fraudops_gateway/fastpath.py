"""POST /predict and /predict/batch as plain ASGI: the authorisation hot path without FastAPI's machinery.

FastAPI declares both routes too (OpenAPI, examples) and answers them when the app runs without
this wrapper; in front of it, this endpoint answers them itself. Through FastAPI a request passes
a dozen middleware layers, dependency solving and response re-validation, which on the 2-core
reference machine cost more CPU than deciding the transaction. Both framings call the same
`Decisions` methods (same strict validation, same errors, same decision), so they answer alike;
the integration tests and the schemathesis run go through this one.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BaseModel, TypeAdapter, ValidationError

from fraudops.errors import FraudopsError
from fraudops_gateway import metrics
from fraudops_gateway.asgi import ASGIApp, Receive, Scope, Send, send_json
from fraudops_gateway.decisions import Decisions
from fraudops_gateway.errors import Refused, http_error, internal_error, invalid_request
from fraudops_gateway.schemas import ErrorResponse, FieldError

log = logging.getLogger(__name__)
_FLAG = TypeAdapter(bool)


class DecisionEndpoints:
    """Serves POST /predict and POST /predict/batch; passes every other request to `app`."""

    def __init__(self, app: ASGIApp, decisions: Decisions, routes: dict[str, Any]) -> None:
        self.app = app
        self.handlers = {"/predict": decisions.predict, "/predict/batch": decisions.predict_batch}
        self.routes = routes  # FastAPI's route objects: request metrics label requests with their path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = (
            self.handlers.get(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if handler is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.routes[scope["path"]]
        answer: BaseModel
        headers: dict[str, str] = {}
        try:
            content_type = _content_type(scope)
            explain = _explain_flag(scope["query_string"])
            body = await _body(receive)
            answer, status = await handler(body, content_type, explain), 200
        except (Refused, FraudopsError) as exc:
            status, answer, headers = http_error(exc)
        except Exception:
            log.exception("answered 500: unexpected error deciding a request", extra={"path": scope["path"]})
            metrics.INTERNAL_ERRORS.inc()
            status, answer = 500, internal_error()
        content = answer.__pydantic_serializer__.to_json(answer)
        await send_json(
            send,
            status,
            content,
            ((name.lower().encode(), value.encode()) for name, value in headers.items()),
        )


def _content_type(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.decode("latin-1")
    return None


async def _body(receive: Receive) -> bytes:
    """The whole body (the guards in front cap its size)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refused(400, ErrorResponse(error="the client went away before sending the whole body"))
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _explain_flag(query_string: bytes) -> bool:
    """The `explain` query parameter, read as FastAPI reads a bool (the last value wins)."""
    if b"explain" not in query_string:
        return False
    values = [
        value
        for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        if name == "explain"
    ]
    if not values:
        return False
    try:
        return _FLAG.validate_python(values[-1])
    except ValidationError as exc:
        reason = exc.errors(include_url=False)[0]["msg"]
        raise Refused(422, invalid_request([FieldError(field="explain", reason=reason)])) from exc
