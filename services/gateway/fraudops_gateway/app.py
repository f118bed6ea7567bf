"""The public API: POST /predict (and /predict/batch), stored decisions, feedback, health and metrics.

Life of a request: request metrics → guards (key, rate, body size) → strict validation (422
naming field and rule) → features from the customer's state → routing → scoring and reason codes
→ answer; the decision is queued for PostgreSQL and written within milliseconds, off the
response path. `build_asgi` puts the /predict fast path (fastpath.py) in front of FastAPI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from fraudops.config import Settings, get_settings
from fraudops.decision import DECISION_COLUMNS, Decision, decision_from_row
from fraudops.errors import ConfigurationError, FraudopsError, NotFoundError, RetryableError
from fraudops.metrics import FEEDBACK
from fraudops_gateway import metrics
from fraudops_gateway.decisions import Decisions
from fraudops_gateway.errors import Refused, field_errors, http_error, invalid_request, parse_json_body
from fraudops_gateway.fastpath import DecisionEndpoints
from fraudops_gateway.guards import Guards
from fraudops_gateway.persistence import DecisionWriter
from fraudops_gateway.runtime import GatewayRuntime
from fraudops_gateway.schemas import (
    FULL_EXAMPLE,
    LEGACY_EXAMPLE,
    REQUEST_BODIES,
    TRANSACTION_ID_PATTERN,
    BatchResponse,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    Health,
    PredictResponse,
    StoredDecision,
)

log = logging.getLogger(__name__)
BACKGROUND_INTERVAL_S = 2.0


def _error(status: int, description: str) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse, "description": description}}


UNAUTHORISED = _error(401, "Missing or invalid API key (when GATEWAY_API_KEYS is set).")
NOT_FOUND = _error(404, "No such transaction.")
TOO_LARGE = _error(413, "Request body larger than GATEWAY_MAX_BODY_BYTES.")
INVALID = _error(422, "Invalid input: each error names the field and the rule it broke.")
RATE_LIMITED = _error(429, "Rate limit (GATEWAY_RATE_LIMIT) exceeded for this client; retry after a second.")
UNAVAILABLE = _error(503, "A dependency is unavailable (database, model server); retry.")
GUARDED = {**UNAUTHORISED, **RATE_LIMITED}


def _json_body(schema: str, examples: dict[str, Any] | None = None) -> dict[str, Any]:
    """OpenAPI for a JSON request body read by the route itself (see `REQUEST_BODIES`)."""
    content: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{schema}"}}
    if examples:
        content["examples"] = examples
    return {"requestBody": {"required": True, "content": {"application/json": content}}}


def _json(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(model.__pydantic_serializer__.to_json(model), status_code=status, headers=headers,
                    media_type="application/json")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    runtime = GatewayRuntime(settings)
    writer = DecisionWriter(settings.db_url, settings.gateway_persist_queue)
    decisions = Decisions(runtime, writer, settings.gateway_max_batch)

    async def refresh(stop: asyncio.Event) -> None:
        """Every few seconds: a new routing table, newly confirmed fraud labels, changed customer states."""
        next_state_poll = time.monotonic() + settings.state_refresh_s
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=min(BACKGROUND_INTERVAL_S, settings.state_refresh_s))
            try:
                await runtime.reload_routing_if_changed()
                await runtime.poll_labels()
                if time.monotonic() >= next_state_poll:
                    next_state_poll = time.monotonic() + settings.state_refresh_s
                    await runtime.poll_changed_state()
            except (ConfigurationError, RetryableError, psycopg.Error) as exc:
                log.warning("background refresh failed; keeping the current state", extra={"error": str(exc)})

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        writer.start()
        stop = asyncio.Event()
        refresher = asyncio.create_task(refresh(stop))
        yield
        # uvicorn has answered every in-flight request by now (graceful shutdown)
        stop.set()
        await refresher
        await writer.drain_and_stop()  # every answered decision is stored before we exit
        await runtime.stop()

    app = FastAPI(
        title="fraudops gateway", version="1", lifespan=lifespan,
        description="Synchronous fraud decisions for card and account transactions. Request bodies are "
                    "validated strictly against this document; every error names the field and the rule.",
    )
    app.state.runtime = runtime
    app.state.writer = writer
    app.state.decisions = decisions

    @app.exception_handler(RequestValidationError)
    async def invalid_input(request: Request, exc: RequestValidationError) -> Response:
        return _json(invalid_request(field_errors(list(exc.errors()), drop=("path", "query"))), 422)

    @app.exception_handler(FraudopsError)
    @app.exception_handler(Refused)
    async def refused(request: Request, exc: FraudopsError | Refused) -> Response:
        status, error, headers = http_error(exc)
        return _json(error, status, headers)

    @app.exception_handler(HTTPException)
    async def starlette_error(request: Request, exc: HTTPException) -> Response:
        """Starlette's own errors (unknown route, wrong method) in the same shape as ours."""
        return _json(ErrorResponse(error=str(exc.detail)), exc.status_code, exc.headers)

    @app.post("/predict", response_model=PredictResponse, tags=["decisions"],
              summary="Decide one transaction (full schema or the legacy minimal payload)",
              responses={**GUARDED, **TOO_LARGE, **INVALID, **UNAVAILABLE},
              openapi_extra=_json_body("PredictRequest", {
                  "full": {"summary": "A card-not-present purchase", "value": FULL_EXAMPLE},
                  "legacy": {"summary": "The old prototype's minimal payload", "value": LEGACY_EXAMPLE}}))
    async def predict(
        request: Request,
        explain: Annotated[bool, Query(description="Reason codes even when the decision is not fraud.")] = False,
    ) -> Response:
        return _json(await decisions.predict(await request.body(), request.headers.get("content-type"), explain))

    @app.post("/predict/batch", response_model=BatchResponse, tags=["decisions"],
              summary="Decide up to GATEWAY_MAX_BATCH transactions, in order",
              responses={**GUARDED, **TOO_LARGE, **INVALID, **UNAVAILABLE},
              openapi_extra=_json_body("BatchRequest", {
                  "two": {"summary": "A full transaction and a legacy one",
                          "value": {"transactions": [FULL_EXAMPLE, LEGACY_EXAMPLE]}}}))
    async def predict_batch(
        request: Request,
        explain: Annotated[bool, Query(description="Reason codes for every transaction.")] = False,
    ) -> Response:
        body = await request.body()
        return _json(await decisions.predict_batch(body, request.headers.get("content-type"), explain))

    @app.get("/transactions/{transaction_id}", response_model=StoredDecision, tags=["decisions"],
             summary="The stored decision of a transaction, its shadow scores and its confirmed label",
             responses={**GUARDED, **NOT_FOUND, **INVALID, **UNAVAILABLE})
    async def stored_decision(
        transaction_id: Annotated[str, Path(min_length=1, max_length=64, pattern=TRANSACTION_ID_PATTERN)],
    ) -> StoredDecision:
        pending = writer.pending.get(transaction_id)
        if pending is not None:
            return _stored(pending.deciding, dict(pending.shadow_scores), None)
        return await asyncio.to_thread(_load_decision, settings.db_url, transaction_id)

    @app.post("/feedback", response_model=FeedbackResponse, tags=["feedback"],
              summary="Record a confirmed label (chargeback, analyst verdict) for a decided transaction",
              responses={**GUARDED, **NOT_FOUND, **TOO_LARGE, **INVALID, **UNAVAILABLE},
              openapi_extra=_json_body("FeedbackRequest", {
                  "chargeback": {"summary": "A chargeback confirmed the fraud", "value": {
                      "transaction_id": FULL_EXAMPLE["transaction_id"], "is_fraud": True,
                      "label_known_at": "2026-12-05T09:30:00Z", "source": "chargeback"}}}))
    async def feedback(request: Request) -> FeedbackResponse:
        payload: FeedbackRequest = parse_json_body(REQUEST_BODIES["FeedbackRequest"], await request.body(),
                                                   request.headers.get("content-type"))
        known_at = payload.label_known_at or datetime.now(UTC)
        known_at = known_at.replace(tzinfo=UTC) if known_at.tzinfo is None else known_at.astimezone(UTC)
        if payload.transaction_id in writer.pending:
            await _wait_until_stored(writer, payload.transaction_id)
        stored = await asyncio.to_thread(_store_feedback, settings.db_url, payload, known_at)
        return FeedbackResponse(transaction_id=payload.transaction_id, is_fraud=payload.is_fraud,
                                label_known_at=known_at, stored=stored)

    @app.get("/health/live", response_model=Health, tags=["operations"], summary="The process is up")
    async def live() -> Health:
        return Health(status="ok")

    @app.get("/health/ready", response_model=Health, tags=["operations"],
             summary="Models loaded and PostgreSQL reachable; `checks.routing` is the live routing table",
             responses={503: {"model": Health, "description": "Not ready: `checks` says what is missing."}})
    async def ready() -> Response:
        checks = {"model": "loaded" if runtime.ready else "not loaded", "routing": runtime.routing_summary}
        try:
            await asyncio.wait_for(asyncio.to_thread(_ping, settings.db_url), timeout=3)
            checks["database"] = "reachable"
        except (psycopg.Error, TimeoutError) as exc:
            checks["database"] = f"unreachable: {str(exc).strip()[:160]}"
        ok = runtime.ready and checks["database"] == "reachable"
        return _json(Health(status="ok" if ok else "unavailable", checks=checks), 200 if ok else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response, summary="Prometheus metrics",
             responses={200: {"description": "Prometheus text format.", "content": {CONTENT_TYPE_LATEST: {}}}})
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict[str, Any]:
        """FastAPI's document plus the request bodies the routes validate themselves."""
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)
            components = document.setdefault("components", {}).setdefault("schemas", {})
            for name, adapter in REQUEST_BODIES.items():
                schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
                components.update(schema.pop("$defs", {}))
                components[name] = schema
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def _wait_until_stored(writer: DecisionWriter, transaction_id: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while transaction_id in writer.pending and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def _ping(db_url: str) -> None:
    with psycopg.connect(db_url, connect_timeout=2) as conn:
        conn.execute("SELECT 1")


def _load_decision(db_url: str, transaction_id: str) -> StoredDecision:
    try:
        with psycopg.connect(db_url, connect_timeout=2) as conn:
            rows = conn.execute(
                f"""SELECT {", ".join(f"d.{name}" for name in DECISION_COLUMNS)}, f.is_fraud
                    FROM decisions d LEFT JOIN feedback_labels f USING (transaction_id)
                    WHERE d.transaction_id = %s""",
                (transaction_id,),
            ).fetchall()
    except psycopg.OperationalError as exc:
        raise RetryableError(f"database unavailable: {exc}") from exc
    decisions = [decision_from_row(row[:-1]) for row in rows]
    deciding = [(decision, row[-1]) for decision, row in zip(decisions, rows, strict=True) if not decision.shadow]
    if not deciding:
        raise NotFoundError(f"no decision stored for transaction {transaction_id!r}")
    decision, label = deciding[0]
    return _stored(decision, {d.variant: d.score for d in decisions if d.shadow}, label)


def _stored(decision: Decision, shadow_scores: dict[str, float], label: bool | None) -> StoredDecision:
    """A decision as `GET /transactions/{id}` answers it (the probability under its API name)."""
    fields = {name: getattr(decision, name) for name in StoredDecision.model_fields if hasattr(decision, name)}
    return StoredDecision(**fields, fraud_probability=decision.score, shadow_scores=shadow_scores, label=label)


def _store_feedback(db_url: str, payload: FeedbackRequest, known_at: datetime) -> bool:
    try:
        with psycopg.connect(db_url, connect_timeout=2) as conn:
            exists = conn.execute("SELECT 1 FROM transactions WHERE transaction_id = %s",
                                  (payload.transaction_id,)).fetchone()
            decision = conn.execute(
                "SELECT model_version, is_fraud FROM decisions WHERE transaction_id = %s AND NOT shadow",
                (payload.transaction_id,)).fetchone()
            if exists is None:
                raise NotFoundError(f"transaction {payload.transaction_id!r} is unknown; feedback needs a decided "
                                    "transaction")
            cursor = conn.execute(
                """INSERT INTO feedback_labels (transaction_id, is_fraud, label_known_at, source)
                   VALUES (%s, %s, %s, %s)
                   ON CONFLICT (transaction_id) DO UPDATE SET is_fraud = EXCLUDED.is_fraud,
                       label_known_at = EXCLUDED.label_known_at, source = EXCLUDED.source, received_at = now()
                   WHERE feedback_labels.is_fraud IS DISTINCT FROM EXCLUDED.is_fraud""",
                (payload.transaction_id, payload.is_fraud, known_at, payload.source),
            )
            stored = cursor.rowcount == 1
            if stored and decision is not None:  # precision on labelled feedback, for the rollout analysis
                FEEDBACK.labels(decision[0], "fraud" if decision[1] else "legitimate",
                                "fraud" if payload.is_fraud else "legitimate").inc()
            return stored
    except psycopg.OperationalError as exc:
        raise RetryableError(f"database unavailable: {exc}") from exc


def build_asgi(settings: Settings | None = None) -> Any:
    """What uvicorn serves: request metrics → guards (key, rate, body size) → the /predict fast path → FastAPI."""
    settings = settings or get_settings()
    app = create_app(settings)
    routes = {route.path: route for route in app.routes if getattr(route, "path", None) in ("/predict",
                                                                                           "/predict/batch")}
    fast = DecisionEndpoints(app, app.state.decisions, routes)
    keys = [key.strip() for key in settings.gateway_api_keys.split(",") if key.strip()]
    return metrics.RequestMetrics(Guards(fast, keys, settings.gateway_rate_limit, settings.gateway_max_body_bytes))
