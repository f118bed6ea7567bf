"""A real Prometheus (Debian's package, installed by hack/prometheus.sh) scraping a test exporter.

The exporter publishes the platform's metric names with the labels a cluster scrape would give them
(decision-side: namespace, variant and model version, including the model monitoring's scores and feature drift;
predictor-side: namespace and InferenceService, including the feature drift a remotely scored variant has), and a
background thread feeds them at rates the test chooses per variant: healthy, erroring, slow or drifting.
The operator's default PromQL queries then run unchanged against Prometheus's HTTP API.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from tests.prometheus import LocalPrometheus, free_port

__all__ = ["LocalPrometheus", "Traffic", "TrafficExporter"]

SCORE_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99)  # the predictor's
TYPICAL_SCORES = (0.005, 0.008, 0.015, 0.03, 0.04, 0.07, 0.12, 0.25, 0.6, 0.95)
DRIFTED_SCORES = (0.4, 0.55, 0.6, 0.65, 0.75, 0.8, 0.85, 0.92, 0.95, 0.97)


@dataclass
class Traffic:
    """What one variant does per second: decisions, the share that fail, latency, score distribution."""

    variant: str
    version: str
    namespace: str
    inferenceservice: str
    model: str
    decisions_per_s: int = 50
    error_rate: float = 0.0
    latency_s: float = 0.008
    scores: tuple[float, ...] = TYPICAL_SCORES
    feature_psi: float = 0.02  # the most drifted feature's PSI against training
    # Where the drift is measured: "decisions" (gateway and consumer scoring the artifact in-process) or
    # "predictor" (the variant's InferenceService, which holds the artifact when scoring is remote).
    drift_measured_by: str = "decisions"


class TrafficExporter:
    """prometheus_client metrics on a loopback port, fed by a thread from the current Traffic entries."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.port = free_port()
        self.decisions = Counter(
            "fraudops_decisions_total",
            "Decisions.",
            ["namespace", "source", "variant", "model_version", "outcome", "shadow"],
            registry=self.registry,
        )
        self.errors = Counter(
            "fraudops_scoring_errors_total",
            "Failed scorings.",
            ["namespace", "source", "variant", "model_version"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "request_predict_seconds",
            "KServe predict latency.",
            ["model_name", "namespace", "serving_kserve_io_inferenceservice"],
            registry=self.registry,
        )
        self.scores = Histogram(
            "fraudops_predictor_score",
            "Scores.",
            ["model", "version", "namespace", "serving_kserve_io_inferenceservice"],
            buckets=SCORE_BUCKETS,
            registry=self.registry,
        )
        # Decision-side model monitoring, as the gateway and the consumer export it (fraudops.monitoring).
        # `namespace` is the target label a cluster scrape gives the gateway and consumer pods.
        self.decision_scores = Histogram(
            "fraudops_score",
            "Scores.",
            ["namespace", "source", "variant", "model_version", "shadow"],
            buckets=SCORE_BUCKETS,
            registry=self.registry,
        )
        # Feature drift, from either side (one family, as in a cluster): the decision side labels it with the
        # variant, the predictor with its InferenceService (fraudops_predictor.metrics).
        self.feature_psi = Gauge(
            "fraudops_feature_psi",
            "Feature PSI.",
            [
                "namespace",
                "source",
                "variant",
                "model_version",
                "feature",
                "serving_kserve_io_inferenceservice",
            ],
            registry=self.registry,
        )
        self._traffic: dict[tuple[str, str], Traffic] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: Any = None
        self._thread = threading.Thread(target=self._feed, name="traffic-exporter", daemon=True)

    def start(self) -> TrafficExporter:
        self._server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._server is not None:
            self._server.shutdown()

    def send(self, traffic: Traffic) -> None:
        """Start (or change) a variant's traffic."""
        with self._lock:
            self._traffic[(traffic.namespace, traffic.inferenceservice)] = traffic

    def forget(self, namespace: str) -> None:
        """Stop every variant's traffic in a namespace (a finished test)."""
        with self._lock:
            self._traffic = {key: t for key, t in self._traffic.items() if key[0] != namespace}

    def _feed(self) -> None:
        tick_s = 0.1
        while not self._stop.wait(tick_s):
            with self._lock:
                current = list(self._traffic.values())
            for t in current:
                count = max(int(t.decisions_per_s * tick_s), 1)
                failed = round(count * t.error_rate)
                self.decisions.labels(t.namespace, "stream", t.variant, t.version, "legitimate", "false").inc(
                    count - failed
                )
                self.errors.labels(t.namespace, "stream", t.variant, t.version).inc(failed)
                latency = self.latency.labels(t.model, t.namespace, t.inferenceservice)
                score = self.scores.labels(t.model, t.version, t.namespace, t.inferenceservice)
                decided = self.decision_scores.labels(t.namespace, "stream", t.variant, t.version, "false")
                drift = (
                    (t.namespace, "predictor", "", t.version)
                    if t.drift_measured_by == "predictor"
                    else (t.namespace, "stream", t.variant, t.version)
                )
                isvc = t.inferenceservice if t.drift_measured_by == "predictor" else ""
                self.feature_psi.labels(*drift, "amount", isvc).set(t.feature_psi)
                self.feature_psi.labels(*drift, "hour_of_day", isvc).set(0.01)
                for value in itertools.islice(itertools.cycle(t.scores), count):
                    latency.observe(t.latency_s)
                    score.observe(value)
                    decided.observe(value)
