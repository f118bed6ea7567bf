"""The consumer's Prometheus metrics: throughput, DLQ, per-stage latency, end-to-end latency, lag."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import numpy as np
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message
from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app, start_http_server

from fraudops.metrics import DECISIONS
from fraudops.variants import Decided
from fraudops_stream.entity_health import Verdict

STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Fine below 0.5 s, where the latency target lives, so quantiles read from it are within a few ms.
E2E_BUCKETS = (
    0.005,
    0.01,
    0.015,
    0.02,
    0.03,
    0.04,
    0.05,
    0.075,
    0.1,
    0.125,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

RECORDS = Counter("fraudops_consumer_records_total", "Records consumed.")
REPLAYED = Counter(
    "fraudops_consumer_replayed_total", "Records replayed into the state only (already stored)."
)
ALERTS = Counter("fraudops_consumer_alerts_total", "Alerts published to the alerts topic.")
DEAD_LETTERED = Counter("fraudops_consumer_dead_lettered_total", "Invalid records sent to the DLQ.")
DB_RETRIES = Counter(
    "fraudops_consumer_db_retries_total", "Batch writes retried while PostgreSQL was unavailable."
)
DELIVERY_RETRIES = Counter(
    "fraudops_consumer_delivery_retries_total",
    "Rounds of alerts or dead letters produced again after a failed delivery.",
)
SCORING_RETRIES = Counter(
    "fraudops_consumer_scoring_retries_total",
    "Batches whose scoring was retried while the deciding variant was unavailable.",
)
BATCH_SIZE = Histogram(
    "fraudops_consumer_batch_records",
    "Records per batch.",
    buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000),
)
STAGE = Histogram(
    "fraudops_consumer_stage_seconds", "Time per batch in each stage.", ["stage"], buckets=STAGE_BUCKETS
)
END_TO_END = Histogram(
    "fraudops_consumer_end_to_end_seconds",
    "From the record entering Kafka (its timestamp) to its decision being stored.",
    buckets=E2E_BUCKETS,
)
LAG = Gauge(
    "fraudops_consumer_lag_records",
    "Records behind the partition's end (what KEDA scales on).",
    ["partition"],
)
ASSIGNED = Gauge("fraudops_consumer_assigned_partitions", "Partitions this consumer owns.")
ENTITY_WAIT = Counter(
    "fraudops_consumer_entity_wait_seconds_total",
    "Time spent waiting for the entity-state component to publish a record's epoch.",
)
ENTITY_STALE_READS = Counter(
    "fraudops_consumer_entity_stale_reads_total",
    "Entity reads at an epoch older than the mirror's history reaches (read from a newer table).",
)
ENTITY_EPOCH = Gauge("fraudops_entity_published_epoch", "The epoch the entity-state component has published.")
ENTITY_LATE_EVENTS = Counter(
    "fraudops_entity_late_events_total",
    "Events that reached the entity-state component after their epoch closed (applied at the next close).",
)
ENTITY_ROWS = Gauge("fraudops_entity_rows", "Entities in the entity-state component's table.")
ENTITY_LAG_RECORDS = Gauge(
    "fraudops_entity_lag_records",
    "Records behind the partitions' ends after the entity-state component's last round.",
)
ENTITY_EPOCH_LAG = Gauge(
    "fraudops_entity_epoch_lag",
    "Epochs between the newest event the entity-state component has read and the epoch it has published "
    "(0 or 1: caught up).",
)
ENTITY_HOLDS_TABLE = Gauge(
    "fraudops_entity_holds_table",
    "1 while this entity-state component holds its topic's writer lock (its table restored), else 0.",
)


def observe_decisions(decided: Decided) -> None:
    for part in decided.parts:
        frauds = int(np.count_nonzero(part.flagged))
        shadow = "true" if part.shadow else "false"
        for outcome, count in (("fraud", frauds), ("legitimate", len(part.rows) - frauds)):
            if count:
                DECISIONS.labels("stream", part.variant, part.model_version, outcome, shadow).inc(count)


def observe_end_to_end(messages: list[Message]) -> None:
    """Latency from each record's Kafka timestamp to now (its decision is stored), observed in bulk."""
    stamps = [m.timestamp() for m in messages]
    milliseconds = np.fromiter(
        (ms for kind, ms in stamps if kind != TIMESTAMP_NOT_AVAILABLE), dtype=np.float64
    )
    if not len(milliseconds):
        return
    seconds = np.maximum(time.time() * 1000 - milliseconds, 0) / 1000
    # One observe() per record costs a microsecond each; bucket with numpy and add the counts instead.
    counts = np.histogram(seconds, bins=(-np.inf, *E2E_BUCKETS, np.inf))[0]
    for bucket, count in zip(END_TO_END._buckets, counts, strict=True):
        bucket.inc(int(count))
    END_TO_END._sum.inc(float(seconds.sum()))


def serve(port: int, probes: Mapping[str, Callable[[], Verdict]] | None = None) -> None:
    """/metrics on `port` (all addresses), and each of `probes` (a path such as /livez) answering 200 or 503
    with its verdict's reason as plain text."""
    if not probes:
        start_http_server(port, addr="0.0.0.0")
        return
    metrics_app = make_wsgi_app()
    routes = dict(probes)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        probe = routes.get(environ.get("PATH_INFO", ""))
        if probe is None:
            return metrics_app(environ, start_response)
        verdict = probe()
        body = f"{verdict.reason}\n".encode()
        status = "200 OK" if verdict.ok else "503 Service Unavailable"
        start_response(
            status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
        )
        return [body]

    server = make_server("0.0.0.0", port, app, _ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-and-probes", daemon=True).start()


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow scrape never holds the process up at exit


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would flood the log."""
