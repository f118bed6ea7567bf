"""What the live dashboard shows, read from the platform's own tables and metrics endpoints.

Throughput, latency and fraud rate come from the `decisions` table in time buckets; recent alerts
(with their reason codes) from `alerts`; the rollout state from the routing table the operator writes
and the model registry; drift and the operator's rollout phase from the services' Prometheus metrics
(`fraudops_feature_psi`, `fraudops_rollout_*`), scraped directly so that no Prometheus is needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from psycopg_pool import ConnectionPool

from fraudops.errors import ConfigurationError
from fraudops.routing import load_routing_table

SERIES_SQL = """
SELECT floor(extract(epoch FROM decided_at) / %(bucket_s)s) * %(bucket_s)s AS bucket,
       count(*) FILTER (WHERE source = 'stream') AS stream,
       count(*) FILTER (WHERE source <> 'stream') AS api,
       count(*) FILTER (WHERE is_fraud) AS fraud,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99_ms
FROM decisions
WHERE NOT shadow AND decided_at >= now() - make_interval(secs => %(window_s)s)
GROUP BY 1 ORDER BY 1
"""
ALERTS_SQL = """
SELECT transaction_id, customer_id, score, threshold, model_version, variant, reasons, created_at
FROM alerts ORDER BY created_at DESC LIMIT %(limit)s
"""
MODELS_SQL = """
SELECT name, version, status, threshold, updated_at FROM model_versions
WHERE status <> 'retired' ORDER BY updated_at DESC LIMIT 10
"""


@dataclass(frozen=True)
class Point:
    """One time bucket: decisions per second by path, fraud share, and decision latency."""

    at: float  # bucket start, Unix seconds
    stream_per_s: float
    api_per_s: float
    fraud_rate: float
    p50_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class Snapshot:
    generated_at: str
    bucket_s: int
    series: list[Point]
    alerts: list[dict[str, Any]]
    models: list[dict[str, Any]]
    routing: list[dict[str, Any]]
    drift: list[dict[str, Any]]
    rollout: list[dict[str, Any]]
    problems: list[str] = field(default_factory=list)  # what could not be read, shown on the page

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def series_points(rows: Iterable[Sequence[Any]], bucket_s: int) -> list[Point]:
    """Rows of SERIES_SQL as points (pure)."""
    points = []
    for bucket, stream, api, fraud, p50, p99 in rows:
        total = stream + api
        points.append(
            Point(
                at=float(bucket),
                stream_per_s=stream / bucket_s,
                api_per_s=api / bucket_s,
                fraud_rate=fraud / total if total else 0.0,
                p50_ms=None if p50 is None else round(float(p50), 3),
                p99_ms=None if p99 is None else round(float(p99), 3),
            )
        )
    return points


def metric_samples(
    texts: Iterable[str], prefix: str = "fraudops_"
) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a fraudops metric in Prometheus exposition texts (pure)."""
    samples = []
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.startswith(prefix) and not math.isnan(sample.value):
                    samples.append((sample.name, dict(sample.labels), float(sample.value)))
    return samples


def drift_rows(samples: list[tuple[str, dict[str, str], float]]) -> list[dict[str, Any]]:
    """Per-feature PSI, most drifted first (pure)."""
    rows = [
        {
            "feature": labels.get("feature", "?"),
            "variant": labels.get("variant", ""),
            "model_version": labels.get("model_version", ""),
            "psi": round(value, 4),
        }
        for name, labels, value in samples
        if name == "fraudops_feature_psi"
    ]
    return sorted(rows, key=lambda row: -row["psi"])


def rollout_rows(samples: list[tuple[str, dict[str, str], float]]) -> list[dict[str, Any]]:
    """The operator's current rollout phase and candidate weight per FraudModel (pure)."""
    by_model: dict[tuple[str, str], dict[str, Any]] = {}
    for name, labels, value in samples:
        key = (labels.get("namespace", ""), labels.get("fraudmodel", ""))
        if name == "fraudops_rollout_phase" and value == 1:
            by_model.setdefault(key, {})["phase"] = labels.get("phase", "")
        elif name == "fraudops_rollout_candidate_weight":
            by_model.setdefault(key, {})["candidate_weight"] = value
    return [
        {"namespace": ns, "fraudmodel": model, **state} for (ns, model), state in sorted(by_model.items())
    ]


class SnapshotReader:
    """Reads a Snapshot on demand from PostgreSQL, the routing table and the metrics endpoints."""

    def __init__(
        self,
        db_url: str,
        metrics_urls: Sequence[str],
        routing_table: Path | None,
        window_s: int = 600,
        bucket_s: int = 5,
    ) -> None:
        self.pool = ConnectionPool(
            db_url, min_size=1, max_size=2, open=False, kwargs={"connect_timeout": 3, "autocommit": True}
        )
        self.metrics_urls = list(metrics_urls)
        self.routing_table = routing_table
        self.window_s, self.bucket_s = window_s, bucket_s

    def open(self) -> None:
        self.pool.open(wait=False)

    def close(self) -> None:
        self.pool.close()

    def read(self) -> Snapshot:
        problems: list[str] = []
        series, alerts, models = self._tables(problems)
        samples = metric_samples(self._scrape(problems))
        return Snapshot(
            generated_at=datetime.now().astimezone().isoformat(timespec="seconds"),
            bucket_s=self.bucket_s,
            series=series,
            alerts=alerts,
            models=models,
            routing=self._routing(problems),
            drift=drift_rows(samples),
            rollout=rollout_rows(samples),
            problems=problems,
        )

    def _tables(self, problems: list[str]) -> tuple[list[Point], list[dict[str, Any]], list[dict[str, Any]]]:
        import psycopg

        try:
            with self.pool.connection(timeout=5) as conn:
                rows = conn.execute(
                    SERIES_SQL, {"bucket_s": self.bucket_s, "window_s": self.window_s}
                ).fetchall()
                alerts = conn.execute(ALERTS_SQL, {"limit": 15}).fetchall()
                models = conn.execute(MODELS_SQL).fetchall()
        except (psycopg.Error, TimeoutError) as exc:
            problems.append(f"PostgreSQL: {exc}")
            return [], [], []
        alert_rows = [
            {
                "transaction_id": t,
                "customer_id": c,
                "score": round(s, 4),
                "threshold": th,
                "model_version": v,
                "variant": var,
                "reasons": reasons,
                "created_at": at.isoformat(),
            }
            for t, c, s, th, v, var, reasons, at in alerts
        ]
        model_rows = [
            {"name": n, "version": v, "status": st, "threshold": th, "updated_at": at.isoformat()}
            for n, v, st, th, at in models
        ]
        return series_points(rows, self.bucket_s), alert_rows, model_rows

    def _scrape(self, problems: list[str]) -> list[str]:
        texts = []
        for url in self.metrics_urls:
            try:
                response = httpx.get(url, timeout=2)
                response.raise_for_status()
                texts.append(response.text)
            except httpx.HTTPError as exc:
                problems.append(f"metrics {url}: {exc}")
        return texts

    def _routing(self, problems: list[str]) -> list[dict[str, Any]]:
        if self.routing_table is None:
            return []
        try:
            table = load_routing_table(self.routing_table)
        except ConfigurationError as exc:
            problems.append(str(exc))
            return []
        return [
            {
                "name": v.name,
                "model_version": v.model_version,
                "mode": v.mode.value,
                "weight": 0.0 if v.mode.value == "shadow" else v.weight,
            }
            for v in table.variants
        ]
