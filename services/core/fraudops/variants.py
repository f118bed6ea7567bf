"""Deciding with the routing table: score each transaction with its deciding variant and every shadow.

Each variant is scored either in-process from its artifact (`Scorer`) or remotely through the
KServe V2 protocol (`RemoteScorer`, binary tensors over HTTP). The gateway and the stream consumer
both decide through `Decider`, so a routing table means the same thing on both paths.

A variant whose model takes extra inputs (`fraudops.extras`) is given the transactions' `extras`
besides the built-in features: an in-process one encodes them with its artifact's codes, a remote
one sends them raw to its model server, which does the same. The others never see them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import numpy as np
import orjson
import pyarrow as pa
from opentelemetry import propagate

from fraudops.artifact import ModelArtifact, load_artifact
from fraudops.decision import CELL, DECISION_SCHEMA, Decision, decisions_table, reasons_json
from fraudops.errors import ConfigurationError, RetryableError
from fraudops.extras import ExtraFields
from fraudops.features.spec import FEATURE_NAMES, FeatureConfig
from fraudops.inference_protocol import (
    FEATURES_INPUT,
    decode_v2_response,
    extra_fields_of,
    extras_tensors,
    v2_binary_request,
)
from fraudops.monitoring import MonitorSet
from fraudops.routing import RoutingTable, TrainedFeatures, Variant
from fraudops.scoring import Reason, Scorer
from fraudops.tracing import tracing_enabled

log = logging.getLogger(__name__)
#: Each transaction's extra fields (`Transaction.extras`; None: it sent none).
ExtraRows = Sequence[Mapping[str, Any] | None]


class VariantScorer(Protocol):
    @property
    def model_version(self) -> str: ...

    @property
    def threshold(self) -> float: ...

    @property
    def extra_fields(self) -> ExtraFields:
        """The extra inputs its model reads (most: none); only then are `extras` passed below."""

    def score(self, features: np.ndarray, extras: ExtraRows | None = None) -> np.ndarray: ...

    def reasons(
        self, features: np.ndarray, top_k: int = 3, exact: bool = True, extras: ExtraRows | None = None
    ) -> list[list[Reason]]: ...


class RemoteScorer:
    """A KServe predictor scored over V2 REST with the binary tensor extension (no JSON float parsing)."""

    def __init__(self, endpoint: str, model_name: str, timeout_s: float = 2.0) -> None:
        self.url = f"{endpoint.rstrip('/')}/v2/models/{model_name}/infer"
        self.client = httpx.Client(timeout=timeout_s, limits=httpx.Limits(max_keepalive_connections=4))
        self.model_version = "unknown"
        self.threshold = 0.5
        try:
            metadata = self.client.get(self.url.rsplit("/infer", 1)[0])
            metadata.raise_for_status()
        except httpx.HTTPError as exc:
            raise RetryableError(f"model server {endpoint} unreachable: {exc}") from exc
        inputs = metadata.json()["inputs"]
        width = next(t["shape"][1] for t in inputs if t["name"] == FEATURES_INPUT)
        #: the raw extra fields its model server takes as tensors of their own (`fraudops.inference_protocol`)
        self.extra_fields = extra_fields_of({t["name"]: t["datatype"] for t in inputs})
        if self.extra_fields and width != len(FEATURE_NAMES) + len(self.extra_fields.kinds):
            raise ConfigurationError(
                f"model server {endpoint} takes {width} features and {len(self.extra_fields.kinds)} extra fields; "
                f"this build computes {len(FEATURE_NAMES)} built-in features: serve a model of this build"
            )
        # One real call learns the served version and threshold (they travel in the response parameters).
        probe = np.zeros((1, len(FEATURE_NAMES) if self.extra_fields else width), dtype=np.float32)
        self._refresh_from(self._infer(probe, [None] if self.extra_fields else None))

    def _infer(
        self,
        features: np.ndarray,
        extras: ExtraRows | None = None,
        reasons: bool = False,
        top_k: int = 3,
        exact: bool = True,
    ) -> dict:
        content, headers = v2_binary_request(
            features,
            {"reasons": reasons, "top_k": top_k, "exact": exact},
            extras=extras_tensors(self.extra_fields, extras) if extras is not None else None,
        )
        if tracing_enabled():
            propagate.inject(headers)  # the predictor's spans join the caller's (the current) trace
        try:
            response = self.client.post(self.url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise RetryableError(f"model server {self.url} unreachable: {exc}") from exc
        if response.status_code >= 500:
            raise RetryableError(
                f"model server {self.url} answered {response.status_code}: {response.text[:200]}"
            )
        response.raise_for_status()
        return decode_v2_response(response)

    def _refresh_from(self, body: dict) -> None:
        parameters = body.get("parameters") or {}
        self.model_version = str(parameters.get("model_version", self.model_version))
        self.threshold = float(parameters.get("threshold", self.threshold))

    def score(self, features: np.ndarray, extras: ExtraRows | None = None) -> np.ndarray:
        if len(features) == 0:
            return np.empty(0, dtype=np.float32)
        body = self._infer(features, extras)
        self._refresh_from(body)
        return np.asarray(body["outputs"]["fraud_probability"], dtype=np.float32)

    def reasons(
        self, features: np.ndarray, top_k: int = 3, exact: bool = True, extras: ExtraRows | None = None
    ) -> list[list[Reason]]:
        if len(features) == 0:
            return []
        body = self._infer(features, extras, reasons=True, top_k=top_k, exact=exact)
        return [
            [Reason(r["feature"], r["value"], r["contribution"]) for r in orjson.loads(row)]
            for row in body["outputs"]["reasons"]
        ]


def build_scorer(variant: Variant, model_name: str) -> VariantScorer:
    if variant.endpoint:
        return RemoteScorer(variant.endpoint, model_name)
    assert variant.model_uri is not None  # the routing table validates one of the two
    return Scorer(load_artifact(variant.model_uri, nthread=1))


@dataclass
class VariantScores:
    """One variant's scores for some rows of a batch, column by column.

    Decision objects are built only when asked for: the stream stores a batch's decisions as one
    Arrow table and builds objects only for its alerts (~10 µs a row saved at 10,000 rows a second).
    """

    variant: str
    model_name: str
    model_version: str
    shadow: bool
    threshold: float
    source: str
    decided_at: datetime
    rows: np.ndarray  # positions in the batch
    transaction_ids: list[str]
    customer_ids: list[str | None]
    scores: np.ndarray  # float32
    flagged: np.ndarray  # bool
    reasons: dict[int, list[dict]]  # by position in this part
    latency_ms: float | None = None

    def decision(self, i: int) -> Decision:
        return Decision(
            transaction_id=self.transaction_ids[i],
            variant=self.variant,
            model_name=self.model_name,
            model_version=self.model_version,
            shadow=self.shadow,
            score=float(self.scores[i]),
            threshold=self.threshold,
            is_fraud=bool(self.flagged[i]),
            reasons=self.reasons.get(i, []),
            latency_ms=self.latency_ms,
            source=self.source,
            decided_at=self.decided_at,
            customer_id=self.customer_ids[i],
        )

    def decisions(self) -> list[Decision]:
        return [self.decision(i) for i in range(len(self.rows))]

    def table(self) -> pa.Table:
        """The rows as an Arrow table of DECISION_SCHEMA: per-row columns from the arrays, the fields that
        are one value for the whole part broadcast in C."""
        count = len(self.rows)
        reasons: list[str] | pa.Array = pa.repeat("[]", count)
        if self.reasons:  # the explained rows (the alerts) among a batch of unexplained ones
            reasons = ["[]"] * count
            for i, explained in self.reasons.items():
                reasons[i] = reasons_json(explained)
        per_row = {
            "transaction_id": self.transaction_ids,
            "customer_id": self.customer_ids,
            "score": self.scores,
            "is_fraud": self.flagged,
            "reasons": reasons,
        }
        columns = []
        for column in DECISION_SCHEMA:
            if column.name in per_row:
                columns.append(pa.array(per_row[column.name], column.type))
            else:
                value = getattr(self, column.name)
                cell = CELL.get(column.name)
                columns.append(pa.repeat(pa.scalar(cell(value) if cell else value, column.type), count))
        return pa.table(columns, schema=DECISION_SCHEMA)


@dataclass
class Decided:
    """The decisions for a batch: one deciding decision per transaction, plus shadow decisions."""

    parts: list[VariantScores]

    @property
    def deciding(self) -> list[Decision]:
        """The deciding decisions, in the batch's order."""
        placed: list[tuple[int, Decision]] = []
        for part in self.parts:
            if not part.shadow:
                placed.extend(zip(part.rows.tolist(), part.decisions(), strict=True))
        return [decision for _, decision in sorted(placed, key=lambda pair: pair[0])]

    @property
    def shadow(self) -> list[Decision]:
        return [decision for part in self.parts if part.shadow for decision in part.decisions()]

    @property
    def all(self) -> list[Decision]:
        return self.deciding + self.shadow

    def alerts(self) -> list[Decision]:
        """Deciding decisions over their threshold (built as objects: they are few)."""
        return [
            part.decision(int(i))
            for part in self.parts
            if not part.shadow
            for i in np.flatnonzero(part.flagged)
        ]

    def table(self) -> pa.Table:
        """Every decision (deciding and shadow) as one Arrow table with the sink's decision columns."""
        return pa.concat_tables([part.table() for part in self.parts]) if self.parts else decisions_table([])


@dataclass(frozen=True)
class _Batch:
    """What every variant's part of one `Decider.decide` call reads."""

    features: np.ndarray  # the built-in features, one row per transaction
    transaction_ids: Sequence[str]
    customer_ids: Sequence[str | None]
    extras: ExtraRows | None
    decided_at: datetime


def recorded_features(artifact: ModelArtifact) -> TrainedFeatures:
    """What an artifact records it was trained with (feature configuration, entity features)."""
    metadata = artifact.metadata
    try:
        return TrainedFeatures.recorded(metadata.feature_config, metadata.training)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"model {metadata.name}:{metadata.version} records a feature configuration this build cannot "
            f"use ({exc}): retrain it"
        ) from exc


class Decider:
    """Routes, scores and explains a batch of feature rows according to a routing table."""

    def __init__(
        self,
        table: RoutingTable,
        scorers: dict[str, VariantScorer],
        source: str,
        threshold_override: float | None = None,
        reason_count: int = 3,
        exact_reasons: bool = True,
    ) -> None:
        self.table = table
        self.scorers = scorers
        self.source = source
        self.threshold_override = threshold_override
        self.reason_count = reason_count
        self.exact_reasons = exact_reasons
        # Scores, alerts and feature drift per variant (fraudops.monitoring).
        self.monitors = MonitorSet(source)
        self._monitored = True  # the current decide() call feeds the monitors
        #: the extra fields any variant reads, and how (what the gateway documents and both paths check)
        self.extra_fields = ExtraFields.union(
            {
                f"variant {name} ({scorer.model_version})": scorer.extra_fields
                for name, scorer in scorers.items()
            }
        )

    @classmethod
    def from_table(
        cls,
        table: RoutingTable,
        source: str,
        threshold_override: float | None = None,
        exact_reasons: bool = True,
    ) -> Decider:
        return cls(
            table,
            {v.name: build_scorer(v, table.model_name) for v in table.variants},
            source,
            threshold_override,
            exact_reasons=exact_reasons,
        )

    def take_over_monitors(self, previous: Decider) -> None:
        """Carry on `previous`'s model monitoring of the variants this Decider scores with the same version
        and mode, and remove the series of the others (`MonitorSet.take_over`)."""
        shadows = {variant.name for variant in self.table.shadows}
        keys = {MonitorSet.key(v.name, self.scorers[v.name], v.name in shadows) for v in self.table.variants}
        self.monitors.take_over(previous.monitors, keys)

    def trained_features(self) -> dict[str, TrainedFeatures]:
        """What each variant's model was trained with, where something says: a local artifact (checked
        against what the routing table declares for it), else the table's declaration (`Variant.features`,
        which the operator writes). A remote variant the table says nothing about is left out."""
        trained: dict[str, TrainedFeatures] = {}
        for variant in self.table.variants:
            scorer = self.scorers[variant.name]
            if isinstance(scorer, Scorer):
                recorded = recorded_features(scorer.artifact)
                model = f"{scorer.artifact.name}:{scorer.artifact.version}"
                problem = variant.features.mismatch(recorded, model) if variant.features else None
                if problem:
                    raise ConfigurationError(problem)
                trained[variant.name] = recorded
            elif variant.features is not None:
                trained[variant.name] = variant.features
        return trained

    def feature_config(self) -> FeatureConfig | None:
        """The feature configuration the variants were trained with (None: nothing here says — every
        variant is a remote model server the table declares nothing for). Variants that disagree cannot
        share one feature state."""
        trained = self.trained_features()
        # the entity lag is the entity readers' (variants without the entity features read no entity table)
        lags = {features.entity_lag_epochs for features in trained.values() if features.entity_features}
        lag = lags.pop() if len(lags) == 1 else FeatureConfig().entity_lag_epochs
        recorded = {
            name: features.config
            if features.entity_features
            else replace(features.config, entity_lag_epochs=lag)
            for name, features in trained.items()
        }
        configs = set(recorded.values())
        if len(configs) > 1:
            raise ConfigurationError(
                "the variants were trained with different feature configurations "
                f"({ {name: config.as_dict() for name, config in recorded.items()} }): they share one feature "
                "state, so serve them in separate deployments or retrain one with the other's settings"
            )
        return configs.pop() if configs else None

    def needs_entity_table(self) -> list[str]:
        """The variants' models (`name:version`) trained with the entity-risk features, by their artifacts
        or the table's declaration: served without the published entity table those features are unknown
        (NaN) and the trees take their missing-value branches for every row (measured: 1,736 of 2,000
        transactions flagged)."""
        trained = self.trained_features()
        needing = []
        for variant in self.table.variants:
            if variant.name in trained and trained[variant.name].entity_features:
                scorer = self.scorers[variant.name]
                needing.append(
                    f"{scorer.artifact.name}:{scorer.artifact.version}"
                    if isinstance(scorer, Scorer)
                    else f"{self.table.model_name}:{variant.model_version}"
                )
        return needing

    def refuse_without_entity_table(self, entity_table: bool) -> None:
        """At start, before any record is scored: a model that needs the entity table is not served
        without it (`Settings.entity_table`, ENTITY_TABLE)."""
        needing = self.needs_entity_table()
        if needing and not entity_table:
            raise ConfigurationError(
                f"model {', '.join(needing)} was trained with the entity-risk features (--entity-features), "
                "which are unknown without the entity table: set ENTITY_TABLE=true with the entity-state "
                "component (`fraudops stream entities`) running, or retrain without --entity-features"
            )

    def threshold(self, variant: str) -> float:
        return (
            self.threshold_override
            if self.threshold_override is not None
            else self.scorers[variant].threshold
        )

    def decide(
        self,
        features: np.ndarray,
        transaction_ids: Sequence[str],
        customer_ids: Sequence[str | None],
        explain_all: bool = False,
        monitored: bool = True,
        extras: ExtraRows | None = None,
    ) -> Decided:
        """Score every row with its deciding variant and with every shadow; explain the flagged ones.
        `monitored=False` (a warm-up) leaves the score, alert and drift metrics alone. `extras`: each
        row's extra fields, for the variants that read some (`extra_fields`; None: no row has any)."""
        started = time.perf_counter()
        now = datetime.now(UTC)
        self._monitored = monitored
        deciding_variants = self.table.deciding
        route = self.table.route(
            np.asarray(transaction_ids, dtype=object), np.asarray(customer_ids, dtype=object)
        )
        batch = _Batch(features, transaction_ids, customer_ids, extras, now)
        parts: list[VariantScores] = []
        for index, variant in enumerate(deciding_variants):
            rows = np.flatnonzero(route == index)
            if not len(rows):
                continue
            try:
                part = self._score(variant, batch, rows, False, explain_all)
            except RetryableError:
                self._count_error(variant, shadow=False)
                if index == 0:
                    raise  # the stable variant itself is down: nothing safe to decide with
                # A failing canary or challenger must not fail decisions: the stable variant decides
                # its share, and the error counts against the variant (the rollout analysis reads it).
                part = self._score(deciding_variants[0], batch, rows, False, explain_all)
            parts.append(part)
        shadows = []
        all_rows = np.arange(len(transaction_ids))
        for variant in self.table.shadows:
            try:
                shadows.append(self._score(variant, batch, all_rows, True, False))
            except RetryableError:
                # A shadow never decides, so its failure costs no decision.
                self._count_error(variant, shadow=True)
        latency_ms = (time.perf_counter() - started) * 1000
        for part in parts:
            part.latency_ms = latency_ms
        return Decided(parts + shadows)

    def _count_error(self, variant: Variant, shadow: bool) -> None:
        self.monitors.count_error(variant.name, self.scorers[variant.name], shadow)
        log.warning("scoring failed", extra={"variant": variant.name, "source": self.source})

    def _score(
        self, variant: Variant, batch: _Batch, rows: np.ndarray, shadow: bool, explain_all: bool
    ) -> VariantScores:
        """`variant`'s part of the batch: the transactions at `rows` (positions in the batch)."""
        scorer = self.scorers[variant.name]
        everyone = len(rows) == len(batch.transaction_ids)
        features = batch.features if everyone else batch.features[rows]
        raw: ExtraRows | None = None  # the rows' extra fields, for a scorer that encodes them remotely
        if scorer.extra_fields:
            if batch.extras is None:
                own: ExtraRows = [None] * len(rows)
            else:
                own = batch.extras if everyone else [batch.extras[i] for i in rows.tolist()]
            if isinstance(scorer, Scorer):  # encoded here: scores, reasons and drift see the model's rows
                features = scorer.model_rows(features, own)
            else:
                raw = own
        scores = scorer.score(features) if raw is None else scorer.score(features, raw)
        threshold = self.threshold(variant.name)
        flagged = scores >= threshold
        reasons: dict[int, list[dict]] = {}
        to_explain = np.arange(len(rows)) if explain_all else np.flatnonzero(flagged)
        if len(to_explain) and not shadow:
            explained = (
                scorer.reasons(features[to_explain], self.reason_count, self.exact_reasons)
                if raw is None
                else scorer.reasons(
                    features[to_explain],
                    self.reason_count,
                    self.exact_reasons,
                    [raw[i] for i in to_explain.tolist()],
                )
            )
            reasons = {
                int(i): [r.as_dict() for r in row] for i, row in zip(to_explain, explained, strict=True)
            }
        # Observed once the variant's part is whole: a part that fails (its explanation call) decides
        # nothing here, and its rows are counted where they are decided (the stable variant, or a retry).
        if self._monitored:
            self.monitors.observe(variant.name, scorer, shadow, scores, flagged, features)
        else:
            self.monitors.prepare(variant.name, scorer, shadow)
        return VariantScores(
            variant=variant.name,
            model_name=self.table.model_name,
            model_version=scorer.model_version,
            shadow=shadow,
            threshold=threshold,
            source=self.source,
            decided_at=batch.decided_at,
            rows=rows,
            transaction_ids=list(batch.transaction_ids)
            if everyone
            else [batch.transaction_ids[i] for i in rows.tolist()],
            customer_ids=list(batch.customer_ids)
            if everyone
            else [batch.customer_ids[i] for i in rows.tolist()],
            scores=scores,
            flagged=flagged,
            reasons=reasons,
        )
