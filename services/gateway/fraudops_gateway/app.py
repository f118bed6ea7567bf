"""The public API: POST /predict (and /predict/batch), stored decisions, feedback, health and metrics.

Life of a request: guards (size, key, rate) → validation (422 naming field and rule) → features from
the customer's state → routing → scoring and reason codes → answer; the decision is queued for
PostgreSQL and written within milliseconds, off the response path.
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
from fastapi import Body, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse, Response
from fraudops.config import Settings, get_settings
from fraudops.errors import ConfigurationError, NotFoundError, RetryableError
from fraudops.schema import LegacyTransaction, Transaction
from fraudops.sink import Decision
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fraudops_gateway import metrics
from fraudops_gateway.guards import BodyTooLarge, Guards
from fraudops_gateway.persistence import DecisionWriter
from fraudops_gateway.runtime import GatewayRuntime, Scored
from fraudops_gateway.schemas import (
    FULL_EXAMPLE,
    LEGACY_EXAMPLE,
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    FieldError,
    Health,
    PredictRequest,
    PredictResponse,
    StoredDecision,
)

log = logging.getLogger(__name__)
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid API key."},
    413: {"model": ErrorResponse, "description": "Request body too large."},
    422: {"model": ErrorResponse, "description": "Invalid input: each error names the field and the rule."},
    429: {"model": ErrorResponse, "description": "Rate limit exceeded."},
    503: {"model": ErrorResponse, "description": "A dependency is unavailable; retry."},
}


def _response(decision: Decision, transaction_id: str, elapsed_ms: float) -> PredictResponse:
    return PredictResponse(
        transaction_id=transaction_id, fraud_probability=decision.score, is_fraud=decision.is_fraud,
        threshold=decision.threshold, model_version=decision.model_version, variant=decision.variant,
        reasons=decision.reasons, prediction_time_ms=round(elapsed_ms, 3),
    )


def _normalise(payload: Transaction | LegacyTransaction) -> Transaction:
    return payload.to_transaction() if isinstance(payload, LegacyTransaction) else payload


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    runtime = GatewayRuntime(settings)
    writer = DecisionWriter(settings.db_url, settings.gateway_persist_queue)

    async def background(stop: asyncio.Event) -> None:
        """Every few seconds: pick up a new routing table and newly confirmed fraud labels."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=2.0)
            try:
                await runtime.reload_routing_if_changed()
                await runtime._run(runtime.poll_labels)
            except (ConfigurationError, RetryableError, psycopg.Error) as exc:
                log.warning("background refresh failed; keeping the current state", extra={"error": str(exc)})

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        writer.start()
        stop = asyncio.Event()
        refresher = asyncio.create_task(background(stop))
        yield
        stop.set()
        await refresher
        await writer.drain_and_stop()  # every answered decision is stored before we exit
        await runtime.stop()

    app = FastAPI(
        title="fraudops gateway", version="1", lifespan=lifespan, default_response_class=ORJSONResponse,
        description="Synchronous fraud decisions for card and account transactions.", responses=ERROR_RESPONSES,
    )
    app.state.runtime = runtime
    app.state.writer = writer

    @app.exception_handler(RequestValidationError)
    async def invalid_input(request: Request, exc: RequestValidationError) -> ORJSONResponse:
        errors = []
        for problem in exc.errors():
            location = [str(part) for part in problem["loc"] if part not in ("body",)]
            # drop the union tag pydantic adds (`full` / `legacy`) so the path reads like the payload
            location = [part for part in location if part not in ("full", "legacy")]
            errors.append(FieldError(field=".".join(location) or "body", reason=problem["msg"]))
        metrics.REJECTED.labels("invalid").inc()
        body = ErrorResponse(error="invalid request", errors=errors)
        return ORJSONResponse(body.model_dump(), status_code=422)

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge) -> ORJSONResponse:
        return ORJSONResponse(ErrorResponse(error=str(exc)).model_dump(), status_code=413)

    @app.exception_handler(RetryableError)
    async def unavailable(request: Request, exc: RetryableError) -> ORJSONResponse:
        return ORJSONResponse(ErrorResponse(error=str(exc)).model_dump(), status_code=503,
                              headers={"Retry-After": "1"})

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> ORJSONResponse:
        return ORJSONResponse(ErrorResponse(error=str(exc)).model_dump(), status_code=404)

    @app.middleware("http")
    async def measure(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.REQUESTS.labels(path, request.method, str(response.status_code)).inc()
        metrics.LATENCY.labels(path).observe(time.perf_counter() - started)
        return response

    async def _decide(transactions: list[Transaction], explain: bool) -> tuple[Scored, list[PredictResponse]]:
        scored = await runtime.score(transactions, explain)
        by_id = {d.transaction_id: d for d in scored.decided.deciding}
        answers = [_response(by_id[tx.transaction_id], tx.transaction_id, scored.elapsed_ms) for tx in transactions]
        metrics.observe_decisions(scored.decided.all)
        await writer.submit(scored.rows, scored.decided.all)
        return scored, answers

    @app.post("/predict", response_model=PredictResponse, tags=["decisions"],
              summary="Decide one transaction (full schema or the legacy minimal payload)")
    async def predict(
        payload: Annotated[PredictRequest, Body(openapi_examples={
            "full": {"summary": "A card-not-present purchase", "value": FULL_EXAMPLE},
            "legacy": {"summary": "The old prototype's minimal payload", "value": LEGACY_EXAMPLE}})],
        explain: Annotated[bool, Query(description="Reason codes even when the decision is not fraud.")] = False,
    ) -> PredictResponse:
        _, answers = await _decide([_normalise(payload)], explain)
        return answers[0]

    @app.post("/predict/batch", response_model=BatchResponse, tags=["decisions"],
              summary="Decide up to GATEWAY_MAX_BATCH transactions in order")
    async def predict_batch(
        payload: BatchRequest,
        explain: Annotated[bool, Query(description="Reason codes for every transaction.")] = False,
    ) -> BatchResponse | ORJSONResponse:
        if len(payload.transactions) > settings.gateway_max_batch:
            error = ErrorResponse(error="invalid request", errors=[FieldError(
                field="transactions", reason=f"at most {settings.gateway_max_batch} transactions per call")])
            return ORJSONResponse(error.model_dump(), status_code=422)
        transactions = [_normalise(item) for item in payload.transactions]
        ids = [tx.transaction_id for tx in transactions]
        if len(set(ids)) != len(ids):
            error = ErrorResponse(error="invalid request", errors=[FieldError(
                field="transactions", reason="transaction_id values must be unique within a batch")])
            return ORJSONResponse(error.model_dump(), status_code=422)
        scored, answers = await _decide(transactions, explain)
        return BatchResponse(results=answers, prediction_time_ms=round(scored.elapsed_ms, 3))

    @app.get("/transactions/{transaction_id}", response_model=StoredDecision, tags=["decisions"],
             responses={404: {"model": ErrorResponse, "description": "No decision for this transaction."}})
    async def stored_decision(transaction_id: str) -> StoredDecision:
        pending = writer.pending.get(transaction_id)
        if pending is not None:
            return StoredDecision(
                transaction_id=transaction_id, fraud_probability=pending.score, is_fraud=pending.is_fraud,
                threshold=pending.threshold, model_name=pending.model_name, model_version=pending.model_version,
                variant=pending.variant, reasons=pending.reasons, latency_ms=pending.latency_ms,
                source=pending.source, decided_at=pending.decided_at)
        return await asyncio.to_thread(_load_decision, settings.db_url, transaction_id)

    @app.post("/feedback", response_model=FeedbackResponse, tags=["feedback"],
              summary="Record a confirmed label (chargeback, analyst verdict) for a decided transaction")
    async def feedback(payload: FeedbackRequest) -> FeedbackResponse:
        known_at = payload.label_known_at or datetime.now(UTC)
        if known_at.tzinfo is None:
            known_at = known_at.replace(tzinfo=UTC)
        if payload.transaction_id in writer.pending:
            await _wait_until_stored(writer, payload.transaction_id)
        stored = await asyncio.to_thread(_store_feedback, settings.db_url, payload, known_at)
        return FeedbackResponse(transaction_id=payload.transaction_id, is_fraud=payload.is_fraud,
                                label_known_at=known_at, stored=stored)

    @app.get("/health/live", response_model=Health, tags=["operations"])
    async def live() -> Health:
        return Health(status="ok")

    @app.get("/health/ready", response_model=Health, tags=["operations"],
             responses={503: {"model": Health, "description": "Not ready."}})
    async def ready() -> Health | ORJSONResponse:
        checks = {"model": "loaded" if runtime.ready else "not loaded"}
        try:
            await asyncio.wait_for(asyncio.to_thread(_ping, settings.db_url), timeout=2)
            checks["database"] = "reachable"
        except (psycopg.Error, TimeoutError) as exc:
            checks["database"] = f"unreachable: {str(exc)[:120]}"
        ok = runtime.ready and checks["database"] == "reachable"
        health = Health(status="ok" if ok else "unavailable", checks=checks)
        return health if ok else ORJSONResponse(health.model_dump(), status_code=503)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

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
                """SELECT d.variant, d.model_name, d.model_version, d.shadow, d.score, d.threshold, d.is_fraud,
                          d.reasons, d.latency_ms, d.source, d.decided_at, f.is_fraud
                   FROM decisions d LEFT JOIN feedback_labels f USING (transaction_id)
                   WHERE d.transaction_id = %s""",
                (transaction_id,),
            ).fetchall()
    except psycopg.OperationalError as exc:
        raise RetryableError(f"database unavailable: {exc}") from exc
    deciding = [row for row in rows if not row[3]]
    if not deciding:
        raise NotFoundError(f"no decision stored for transaction {transaction_id!r}")
    (variant, model_name, version, _, score, threshold, is_fraud, reasons, latency, source, decided_at,
     label) = deciding[0]
    return StoredDecision(
        transaction_id=transaction_id, fraud_probability=score, is_fraud=is_fraud, threshold=threshold,
        model_name=model_name, model_version=version, variant=variant, reasons=reasons, latency_ms=latency,
        source=source, decided_at=decided_at, shadow_scores={row[0]: row[4] for row in rows if row[3]}, label=label)


def _store_feedback(db_url: str, payload: FeedbackRequest, known_at: datetime) -> bool:
    try:
        with psycopg.connect(db_url, connect_timeout=2) as conn:
            exists = conn.execute("SELECT 1 FROM transactions WHERE transaction_id = %s",
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
            return cursor.rowcount == 1
    except psycopg.OperationalError as exc:
        raise RetryableError(f"database unavailable: {exc}") from exc


def build_asgi(settings: Settings | None = None) -> Any:
    """The app wrapped in its guards (what uvicorn serves)."""
    settings = settings or get_settings()
    app = create_app(settings)
    keys = [key.strip() for key in settings.gateway_api_keys.split(",") if key.strip()]
    return Guards(app, keys, settings.gateway_rate_limit, settings.gateway_max_body_bytes)
