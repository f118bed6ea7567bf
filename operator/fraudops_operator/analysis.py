"""Metric analysis of a rollout: PromQL queries per variant (Prometheus HTTP API) and the verdict they give.

`judge` is pure: candidate and stable numbers against the FraudModel's limits → passed, failed or
inconclusive, with a summary that quotes every number. `measure` is the edge: it fills the queries'
placeholders for one variant and asks Prometheus. Missing data never passes silently: it makes the
verdict inconclusive (the step waits), except precision on labelled feedback, which usually arrives
days after the decision and is only judged when there is some.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import httpx

from fraudops_operator.resources import AnalysisSpec

# Defaults built from the platform's metric names. Decision-side metrics (gateway and consumer) carry the
# routing variant and the model version; predictor-side metrics are told apart by the InferenceService
# that served them (the scrape maps pod labels to target labels, as KServe's Prometheus annotations and the
# usual `labelmap` relabelling do).
# Every decision-side query is scoped to the FraudModel's namespace (the label the cluster scrape gives the
# gateway and consumer pods): two FraudModels elsewhere with the same variant names and versions must never
# judge each other's traffic.
_MONITORED = 'namespace="{namespace}",variant="{variant}",model_version="{version}"'
_DECISIONS = "fraudops_decisions_total{" + _MONITORED + "}"
_ERRORS = "fraudops_scoring_errors_total{" + _MONITORED + "}"
_PREDICTOR = 'namespace="{namespace}",serving_kserve_io_inferenceservice="{inferenceservice}"'
DEFAULT_QUERIES: Mapping[str, str] = {
    "samples": f"sum(increase({_DECISIONS}[{{window}}]))",
    "errorRate": (
        f"(sum(increase({_ERRORS}[{{window}}])) or vector(0)) / clamp_min(sum(increase({_DECISIONS}"
        f"[{{window}}])) + (sum(increase({_ERRORS}[{{window}}])) or vector(0)), 1)"
    ),
    "p99LatencyMs": (
        "1000 * histogram_quantile(0.99, sum by (le) (rate(request_predict_seconds_bucket{"
        + _PREDICTOR
        + "}[{window}])))"
    ),
    # Model monitoring (decision-side: the same for embedded and remote scoring, and per variant also in
    # shadow mode), in the FraudModel's namespace as the cluster scrape labels its gateway and consumer pods.
    "scoreBuckets": "sum by (le) (increase(fraudops_score_bucket{" + _MONITORED + "}[{window}]))",
    # Feature drift needs the artifact's reference: measured where the variant is scored, by the gateway and
    # consumer for an embedded model, by the InferenceService's predictor for a remote one (which is what
    # the operator deploys). Whichever exists counts.
    "featurePSI": (
        "max(max_over_time(fraudops_feature_psi{" + _MONITORED + "}[{window}]) or max_over_time("
        "fraudops_feature_psi{" + _PREDICTOR + "}[{window}]))"
    ),
    "feedbackPrecision": (
        'sum(increase(fraudops_feedback_total{namespace="{namespace}",model_version="{version}",'
        'decision="fraud",label="fraud"}[{window}])) / sum(increase(fraudops_feedback_total{'
        'namespace="{namespace}",model_version="{version}",decision="fraud"}[{window}]))'
    ),
}
_PSI_FLOOR = 1e-4  # an empty bucket would make PSI infinite


class Outcome(StrEnum):
    PASSED = "Passed"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"


@dataclass(frozen=True)
class VariantMetrics:
    """One variant's numbers over the window; None where the query returned no data."""

    samples: float | None = None
    error_rate: float | None = None
    p99_latency_ms: float | None = None
    score_buckets: Mapping[float, float] | None = None  # upper bound `le` → cumulative count
    feedback_precision: float | None = None
    max_feature_psi: float | None = None  # the most drifted feature against the training distribution


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str  # AnalysisPassed, ErrorRateTooHigh, LatencyTooHigh, ScoreDrift, FeatureDrift, PrecisionTooLow, InsufficientSamples, MetricsMissing, MetricsUnavailable
    summary: str
    numbers: tuple[tuple[str, str, float], ...] = ()  # (metric, variant, value) of what was measured


@dataclass(frozen=True)
class VariantQuery:
    """Who a query is about: the values of the placeholders."""

    variant: str
    version: str
    model: str
    namespace: str
    inferenceservice: str

    def fill(self, query: str, window: str) -> str:
        # Plain token replacement: PromQL's own braces must stay untouched.
        values = {
            "variant": self.variant,
            "version": self.version,
            "model": self.model,
            "namespace": self.namespace,
            "inferenceservice": self.inferenceservice,
            "window": window,
        }
        for key, value in values.items():
            query = query.replace("{" + key + "}", value)
        return query


# --------------------------------------------------------------------------- the verdict (pure)


def population_stability_index(
    expected: Mapping[float, float], actual: Mapping[float, float]
) -> float | None:
    """PSI between two cumulative histograms with the same buckets (None if either is empty)."""
    bounds = sorted(set(expected) & set(actual))
    expected_share, actual_share = _shares(expected, bounds), _shares(actual, bounds)
    if expected_share is None or actual_share is None:
        return None
    return sum((a - e) * math.log(a / e) for e, a in zip(expected_share, actual_share, strict=True))


def _shares(cumulative: Mapping[float, float], bounds: list[float]) -> list[float] | None:
    counts = [cumulative[b] for b in bounds]
    per_bucket = [max(c - p, 0.0) for c, p in zip(counts, [0.0, *counts[:-1]], strict=True)]
    total = sum(per_bucket)
    if total <= 0:
        return None
    return [max(c / total, _PSI_FLOOR) for c in per_bucket]


def judge(limits: AnalysisSpec, candidate: VariantMetrics, stable: VariantMetrics) -> Verdict:
    """Candidate against the limits (stable's numbers are quoted for comparison)."""
    samples = candidate.samples
    if samples is None:
        return Verdict(Outcome.INCONCLUSIVE, "MetricsMissing", "no decision count for the candidate yet")
    if samples < limits.min_samples:
        return Verdict(
            Outcome.INCONCLUSIVE,
            "InsufficientSamples",
            f"candidate made {samples:.0f} decisions in {limits.window}, fewer than minSamples "
            f"{limits.min_samples}",
        )
    psi = None
    if candidate.score_buckets is not None and stable.score_buckets is not None:
        psi = population_stability_index(stable.score_buckets, candidate.score_buckets)
    checks = [
        _upper(
            "error rate",
            "maxErrorRate",
            "ErrorRateTooHigh",
            candidate.error_rate,
            stable.error_rate,
            limits.max_error_rate,
            "{:.4f}",
        ),
        _upper(
            "p99 latency",
            "maxP99LatencyMs",
            "LatencyTooHigh",
            candidate.p99_latency_ms,
            stable.p99_latency_ms,
            limits.max_p99_latency_ms,
            "{:.1f} ms",
        ),
        _upper("score PSI vs stable", "maxScorePSI", "ScoreDrift", psi, None, limits.max_score_psi, "{:.3f}"),
    ]
    if limits.max_feature_psi is not None:
        checks.append(
            _upper(
                "feature PSI vs training",
                "maxFeaturePSI",
                "FeatureDrift",
                candidate.max_feature_psi,
                stable.max_feature_psi,
                limits.max_feature_psi,
                "{:.3f}",
                required=False,
            )
        )
    if limits.min_feedback_precision is not None:
        checks.append(
            _lower(
                "feedback precision",
                "minFeedbackPrecision",
                "PrecisionTooLow",
                candidate.feedback_precision,
                stable.feedback_precision,
                limits.min_feedback_precision,
                "{:.3f}",
            )
        )
    summary = "; ".join([*(c.text for c in checks), f"samples {samples:.0f} ≥ {limits.min_samples}"])
    numbers = _numbers(candidate, stable, psi)
    failed = [c for c in checks if c.passed is False]
    if failed:
        return Verdict(Outcome.FAILED, failed[0].reason, summary, numbers)
    missing = [c for c in checks if c.passed is None and c.required]
    if missing:
        return Verdict(Outcome.INCONCLUSIVE, "MetricsMissing", summary, numbers)
    return Verdict(Outcome.PASSED, "AnalysisPassed", summary, numbers)


def _numbers(
    candidate: VariantMetrics, stable: VariantMetrics, psi: float | None
) -> tuple[tuple[str, str, float], ...]:
    """What was measured, as (metric, variant, value), for the operator's metrics."""
    measured = [("scorePSI", "candidate", psi)]
    for variant, metrics in (("candidate", candidate), ("stable", stable)):
        measured += [
            ("samples", variant, metrics.samples),
            ("errorRate", variant, metrics.error_rate),
            ("p99LatencyMs", variant, metrics.p99_latency_ms),
            ("feedbackPrecision", variant, metrics.feedback_precision),
            ("featurePSI", variant, metrics.max_feature_psi),
        ]
    return tuple(
        (metric, variant, value)
        for metric, variant, value in measured
        if value is not None and not math.isnan(value)
    )


@dataclass(frozen=True)
class _Check:
    passed: bool | None  # None: no data
    reason: str
    text: str
    required: bool = True


def _upper(
    what: str,
    limit_name: str,
    reason: str,
    value: float | None,
    stable: float | None,
    limit: float,
    fmt: str,
    required: bool = True,
) -> _Check:
    if value is None or math.isnan(value):
        return _Check(
            None, reason, f"{what}: no data" + ("" if required else ", not judged"), required=required
        )
    passed = value <= limit
    text = f"{what} {fmt.format(value)} {'≤' if passed else '>'} {limit_name} {fmt.format(limit)}"
    if stable is not None and not math.isnan(stable):
        text += f" (stable {fmt.format(stable)})"
    return _Check(passed, reason, text)


def _lower(
    what: str, limit_name: str, reason: str, value: float | None, stable: float | None, limit: float, fmt: str
) -> _Check:
    if value is None or math.isnan(value):
        return _Check(None, reason, f"{what}: no labelled feedback yet, not judged", required=False)
    passed = value >= limit
    text = f"{what} {fmt.format(value)} {'≥' if passed else '<'} {limit_name} {fmt.format(limit)}"
    if stable is not None and not math.isnan(stable):
        text += f" (stable {fmt.format(stable)})"
    return _Check(passed, reason, text)


# --------------------------------------------------------------------------- Prometheus (the edge)


class MetricsUnavailableError(Exception):
    """Prometheus could not answer (unreachable, HTTP error, bad PromQL)."""


class PrometheusClient:
    """The two calls the analysis needs from the Prometheus HTTP API (instant queries)."""

    def __init__(self, base_url: str, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def query(self, promql: str) -> list[dict]:
        try:
            response = httpx.get(
                f"{self.base_url}/api/v1/query", params={"query": promql}, timeout=self.timeout_s
            )
        except httpx.HTTPError as exc:
            raise MetricsUnavailableError(f"Prometheus {self.base_url} unreachable: {exc}") from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise MetricsUnavailableError(f"Prometheus answered {response.status_code} without JSON") from exc
        if body.get("status") != "success":
            raise MetricsUnavailableError(
                f"Prometheus rejected `{promql}`: {body.get('error', response.text[:200])}"
            )
        data = body["data"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def scalar(self, promql: str) -> float | None:
        """The single number a query returns (None when it returns nothing)."""
        series = self.query(promql)
        if not series:
            return None
        return float(series[0]["value"][1])

    def by_label(self, promql: str, label: str) -> dict[float, float] | None:
        series = self.query(promql)
        if not series:
            return None
        return {float(s["metric"][label]): float(s["value"][1]) for s in series if label in s["metric"]}


def measure(client: PrometheusClient, limits: AnalysisSpec, who: VariantQuery) -> VariantMetrics:
    """One variant's numbers over the window (raises MetricsUnavailableError)."""
    queries = {**DEFAULT_QUERIES, **limits.queries}

    def promql(name: str) -> str:
        return who.fill(queries[name], limits.window)

    return VariantMetrics(
        samples=client.scalar(promql("samples")),
        error_rate=client.scalar(promql("errorRate")),
        p99_latency_ms=client.scalar(promql("p99LatencyMs")),
        score_buckets=client.by_label(promql("scoreBuckets"), "le"),
        feedback_precision=client.scalar(promql("feedbackPrecision"))
        if limits.min_feedback_precision is not None
        else None,
        max_feature_psi=client.scalar(promql("featurePSI")) if limits.max_feature_psi is not None else None,
    )


def analyse(limits: AnalysisSpec, candidate: VariantQuery, stable: VariantQuery) -> Verdict:
    """Query both variants and judge; an unreachable Prometheus is an inconclusive verdict, never a crash."""
    client = PrometheusClient(limits.prometheus_url)
    try:
        return judge(limits, measure(client, limits, candidate), measure(client, limits, stable))
    except MetricsUnavailableError as exc:
        return Verdict(Outcome.INCONCLUSIVE, "MetricsUnavailable", str(exc))
