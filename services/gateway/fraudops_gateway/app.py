"""The public API: POST /predict (and /predict/batch), stored decisions, feedback, health and metrics.

Life of a request: request metrics → guards (key, rate, body size) → strict validation (422
naming field and rule) → features from the customer's state → routing → scoring and reason codes
→ answer; the decision is queued for PostgreSQL and written within milliseconds, off the
response path. `build_asgi` puts the /predict fast path (fastpath.py) in front of FastAPI.

Every database access of the gateway goes through one connection pool, opened at start without
waiting for PostgreSQL. Background work runs supervised (supervision.py); `/health/ready` reports
what it found, with no database round trip of its own. An error's detail goes to the log; the
caller gets the status and a message that gives nothing internal away.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from fraudops.config import Settings, get_settings, trusted_networks
from fraudops.db import async_pool
from fraudops.errors import FraudopsError
from fraudops.extras import NO_EXTRA_FIELDS
from fraudops_gateway import metrics
from fraudops_gateway.decisions import Decisions
from fraudops_gateway.errors import (
    Refused,
    field_errors,
    http_error,
    internal_error,
    invalid_request,
    parse_json_body,
)
from fraudops_gateway.fastpath import DecisionEndpoints
from fraudops_gateway.guards import OPEN_PATHS, Guards
from fraudops_gateway.persistence import DecisionWriter
from fraudops_gateway.records import as_stored, load_decision, publish_feedback_quality, store_feedback
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
    document_extra_fields,
)
from fraudops_gateway.supervision import BackgroundHealth, Refresh, run_every

log = logging.getLogger(__name__)
BACKGROUND_INTERVAL_S = 2.0
API_KEY_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "X-API-Key",
    "description": "One of the keys in GATEWAY_API_KEYS.",
}


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
    return Response(
        model.__pydantic_serializer__.to_json(model),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    pool = async_pool(settings.db_url, settings.db_pool_min_size, settings.db_pool_max_size, name="gateway")
    health = BackgroundHealth()
    runtime = GatewayRuntime(settings, pool, health)
    writer = DecisionWriter(pool, settings.gateway_persist_queue, health)
    decisions = Decisions(runtime, writer, settings.gateway_max_batch)
    every = min(BACKGROUND_INTERVAL_S, settings.state_refresh_s)
    refreshes = (
        Refresh("routing-refresh", every, runtime.refresh_routing),
        Refresh("label-poll", every, runtime.refresh_labels),
        Refresh("state-poll", settings.state_refresh_s, runtime.refresh_state),
        Refresh("entity-table-poll", every, runtime.refresh_entities),
        Refresh(
            "feedback-quality",
            settings.feedback_quality_interval_s,
            functools.partial(
                publish_feedback_quality,
                pool,
                timedelta(seconds=settings.feedback_label_delay_s),
                timedelta(seconds=settings.feedback_cohort_s),
            ),
            gates_readiness=False,  # model monitoring never takes the gateway out of its Service
        ),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=False)  # the gateway starts while PostgreSQL is away (and scores meanwhile)
        await runtime.start()
        writer.start()
        stop = asyncio.Event()
        refreshers = [
            asyncio.create_task(
                run_every(r.task, r.interval_s, r.step, health, stop, gates_readiness=r.gates_readiness),
                name=r.task,
            )
            for r in refreshes
        ]
        yield
        # uvicorn has answered every in-flight request by now (graceful shutdown)
        stop.set()
        await asyncio.gather(*refreshers)
        await writer.drain_and_stop()  # every answered decision is stored before we exit
        await runtime.stop()
        await pool.close()

    app = FastAPI(
        title="fraudops gateway",
        version="1",
        lifespan=lifespan,
        description="Synchronous fraud decisions for card and account transactions. Request bodies are "
        "validated strictly against this document; every error names the field and the rule.",
    )
    app.state.runtime = runtime
    app.state.writer = writer
    app.state.decisions = decisions
    app.state.health = health

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

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        """A bug: 500 in our shape, nothing internal in it. (Starlette re-raises it: uvicorn logs the traceback.)"""
        metrics.INTERNAL_ERRORS.inc()
        return _json(internal_error(), 500)

    @app.post(
        "/predict",
        response_model=PredictResponse,
        tags=["decisions"],
        summary="Decide one transaction (full schema or the legacy minimal payload)",
        responses={**GUARDED, **TOO_LARGE, **INVALID, **UNAVAILABLE},
        openapi_extra=_json_body(
            "PredictRequest",
            {
                "full": {"summary": "A card-not-present purchase", "value": FULL_EXAMPLE},
                "legacy": {"summary": "The old prototype's minimal payload", "value": LEGACY_EXAMPLE},
            },
        ),
    )
    async def predict(
        request: Request,
        explain: Annotated[
            bool, Query(description="Reason codes even when the decision is not fraud.")
        ] = False,
    ) -> Response:
        return _json(
            await decisions.predict(await request.body(), request.headers.get("content-type"), explain)
        )

    @app.post(
        "/predict/batch",
        response_model=BatchResponse,
        tags=["decisions"],
        summary="Decide up to GATEWAY_MAX_BATCH transactions, in order",
        responses={**GUARDED, **TOO_LARGE, **INVALID, **UNAVAILABLE},
        openapi_extra=_json_body(
            "BatchRequest",
            {
                "two": {
                    "summary": "A full transaction and a legacy one",
                    "value": {"transactions": [FULL_EXAMPLE, LEGACY_EXAMPLE]},
                }
            },
        ),
    )
    async def predict_batch(
        request: Request,
        explain: Annotated[bool, Query(description="Reason codes for every transaction.")] = False,
    ) -> Response:
        body = await request.body()
        return _json(await decisions.predict_batch(body, request.headers.get("content-type"), explain))

    @app.get(
        "/transactions/{transaction_id}",
        response_model=StoredDecision,
        tags=["decisions"],
        summary="The stored decision of a transaction, its shadow scores and its confirmed label",
        responses={**GUARDED, **NOT_FOUND, **INVALID, **UNAVAILABLE},
    )
    async def stored_decision(
        transaction_id: Annotated[str, Path(min_length=1, max_length=64, pattern=TRANSACTION_ID_PATTERN)],
    ) -> StoredDecision:
        pending = writer.pending.get(transaction_id)
        if pending is not None:
            return as_stored(pending.deciding, dict(pending.shadow_scores), None)
        return await load_decision(pool, transaction_id)

    @app.post(
        "/feedback",
        response_model=FeedbackResponse,
        tags=["feedback"],
        summary="Record a confirmed label (chargeback, analyst verdict) for a decided transaction",
        responses={**GUARDED, **NOT_FOUND, **TOO_LARGE, **INVALID, **UNAVAILABLE},
        openapi_extra=_json_body(
            "FeedbackRequest",
            {
                "chargeback": {
                    "summary": "A chargeback confirmed the fraud",
                    "value": {
                        "transaction_id": FULL_EXAMPLE["transaction_id"],
                        "is_fraud": True,
                        "label_known_at": "2026-12-05T09:30:00Z",
                        "source": "chargeback",
                    },
                }
            },
        ),
    )
    async def feedback(request: Request) -> FeedbackResponse:
        payload: FeedbackRequest = parse_json_body(
            REQUEST_BODIES["FeedbackRequest"], await request.body(), request.headers.get("content-type")
        )
        known_at = payload.label_known_at or datetime.now(UTC)
        known_at = known_at.replace(tzinfo=UTC) if known_at.tzinfo is None else known_at.astimezone(UTC)
        if payload.transaction_id in writer.pending:
            await _wait_until_stored(writer, payload.transaction_id)
        stored = await store_feedback(pool, payload, known_at)
        return FeedbackResponse(
            transaction_id=payload.transaction_id,
            is_fraud=payload.is_fraud,
            label_known_at=known_at,
            stored=stored,
        )

    @app.get("/health/live", response_model=Health, tags=["operations"], summary="The process is up")
    async def live() -> Health:
        return Health(status="ok")

    @app.get(
        "/health/ready",
        response_model=Health,
        tags=["operations"],
        summary="Models loaded, PostgreSQL reachable and no background task failing; `checks.routing` is "
        "the live routing table",
        responses={503: {"model": Health, "description": "Not ready: `checks` says what is missing."}},
    )
    async def ready() -> Response:
        """From what the gateway already knows (the database as its background reads last found it)."""
        checks = {
            "model": "loaded" if runtime.ready else "not loaded",
            "routing": runtime.routing_summary,
            **health.checks(),
        }
        ok = runtime.ready and health.ok
        return _json(Health(status="ok" if ok else "unavailable", checks=checks), 200 if ok else 503)

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        summary="Prometheus metrics",
        responses={200: {"description": "Prometheus text format.", "content": {CONTENT_TYPE_LATEST: {}}}},
    )
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    documented = NO_EXTRA_FIELDS  # the extra fields the cached document names

    def openapi() -> dict[str, Any]:
        """FastAPI's document plus the request bodies the routes validate themselves, naming the extra
        fields of the models served now (made again when a new routing table changes them)."""
        nonlocal documented
        fields = runtime.extra_fields
        if app.openapi_schema is None or fields != documented:
            document = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = document.setdefault("components", {}).setdefault("schemas", {})
            for name, adapter in REQUEST_BODIES.items():
                schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
                components.update(schema.pop("$defs", {}))
                components[name] = schema
            document_extra_fields(components, fields)
            if api_keys(settings):
                _require_api_key(document)
            app.openapi_schema, documented = document, fields
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def _wait_until_stored(writer: DecisionWriter, transaction_id: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while transaction_id in writer.pending and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def api_keys(settings: Settings) -> list[str]:
    return [key.strip() for key in settings.gateway_api_keys.split(",") if key.strip()]


def _require_api_key(document: dict[str, Any]) -> None:
    """State in the document that every guarded operation needs a key (when GATEWAY_API_KEYS is set)."""
    document["components"]["securitySchemes"] = {"ApiKey": API_KEY_SCHEME}
    for path, operations in document["paths"].items():
        if not path.startswith(OPEN_PATHS):
            for operation in operations.values():
                operation["security"] = [{"ApiKey": []}]


def build_asgi(settings: Settings | None = None) -> Any:
    """What uvicorn serves: request metrics → guards (key, rate, body size) → the /predict fast path → FastAPI."""
    settings = settings or get_settings()
    app = create_app(settings)
    routes = {
        route.path: route
        for route in app.routes
        if getattr(route, "path", None) in ("/predict", "/predict/batch")
    }
    fast = DecisionEndpoints(app, app.state.decisions, routes)
    guards = Guards(
        fast,
        api_keys(settings),
        settings.gateway_rate_limit,
        settings.gateway_max_body_bytes,
        trusted_networks(settings.gateway_trusted_proxies),
    )
    return metrics.RequestMetrics(guards)
