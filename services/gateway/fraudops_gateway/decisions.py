"""Deciding transactions: the use case behind POST /predict and POST /predict/batch.

Parse and validate the body (strict JSON), apply the rules beyond the schema (extra fields of the
kind their model input reads), score through the runtime, observe, queue the decisions for
PostgreSQL, answer. Both framings of these endpoints — the FastAPI routes and the plain-ASGI fast
path — call these methods, so they answer alike.
"""

from __future__ import annotations

from fraudops.errors import RejectedInputError
from fraudops.schema import Transaction
from fraudops.sink import Decision
from fraudops_gateway import metrics
from fraudops_gateway.errors import Refused, invalid_request, parse_json_body
from fraudops_gateway.persistence import DecisionWriter
from fraudops_gateway.runtime import GatewayRuntime, Scored
from fraudops_gateway.schemas import (
    REQUEST_BODIES,
    BatchRequest,
    BatchResponse,
    FieldError,
    PredictResponse,
    as_transaction,
)


def _answer(decision: Decision, elapsed_ms: float) -> PredictResponse:
    return PredictResponse(
        transaction_id=decision.transaction_id,
        fraud_probability=decision.score,
        is_fraud=decision.is_fraud,
        threshold=decision.threshold,
        model_version=decision.model_version,
        variant=decision.variant,
        reasons=decision.reasons,
        prediction_time_ms=round(elapsed_ms, 3),
    )


class Decisions:
    def __init__(self, runtime: GatewayRuntime, writer: DecisionWriter, max_batch: int) -> None:
        self.runtime = runtime
        self.writer = writer
        self.max_batch = max_batch

    async def predict(self, body: bytes, content_type: str | None, explain: bool) -> PredictResponse:
        payload = parse_json_body(REQUEST_BODIES["PredictRequest"], body, content_type)
        transaction = as_transaction(payload)
        fields = self.runtime.extra_fields
        if fields and (refusal := fields.refusal(transaction.extras)) is not None:
            raise _invalid(*refusal)
        _, answers = await self.decide([transaction], explain)
        return answers[0]

    async def predict_batch(self, body: bytes, content_type: str | None, explain: bool) -> BatchResponse:
        batch: BatchRequest = parse_json_body(REQUEST_BODIES["BatchRequest"], body, content_type)
        if len(batch.transactions) > self.max_batch:
            raise _invalid("transactions", f"at most {self.max_batch} transactions per call")
        transactions = []
        fields = self.runtime.extra_fields
        for index, payload in enumerate(batch.transactions):
            try:
                transactions.append(as_transaction(payload))
            except RejectedInputError as exc:
                raise _invalid(f"transactions.{index}.{exc.field}", exc.reason) from exc
            if fields and (refusal := fields.refusal(transactions[-1].extras)) is not None:
                raise _invalid(f"transactions.{index}.{refusal[0]}", refusal[1])
        ids = [tx.transaction_id for tx in transactions]
        if len(set(ids)) != len(ids):
            raise _invalid("transactions", "transaction_id values must be unique within a batch")
        scored, answers = await self.decide(transactions, explain)
        return BatchResponse(results=answers, prediction_time_ms=round(scored.elapsed_ms, 3))

    async def decide(
        self, transactions: list[Transaction], explain: bool
    ) -> tuple[Scored, list[PredictResponse]]:
        """Score, observe and queue for storage; the answers come back in the order of `transactions`."""
        scored = await self.runtime.score(transactions, explain)
        decisions = scored.decided.all
        by_id = {decision.transaction_id: decision for decision in decisions if not decision.shadow}
        answers = [_answer(by_id[tx.transaction_id], scored.elapsed_ms) for tx in transactions]
        metrics.observe_decisions(decisions)
        await self.writer.submit(scored.rows, decisions)  # queued before we answer: never lost
        return scored, answers


def _invalid(field: str, reason: str) -> Refused:
    return Refused(422, invalid_request([FieldError(field=field, reason=reason)]))
