"""A real Prometheus (Debian's package, installed by hack/prometheus.sh) scraping a test exporter.

The exporter publishes the platform's metric names with the labels a cluster scrape would give them
(decision-side: variant and model version; predictor-side: namespace and InferenceService), and a
background thread feeds them at rates the test chooses per variant: healthy, erroring, slow or drifting.
The operator's default PromQL queries then run unchanged against Prometheus's HTTP API.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALLER = REPO_ROOT / "hack" / "prometheus.sh"
SCRAPE_INTERVAL = "1s"
SCORE_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99)  # the predictor's
TYPICAL_SCORES = (0.005, 0.008, 0.015, 0.03, 0.04, 0.07, 0.12, 0.25, 0.6, 0.95)
DRIFTED_SCORES = (0.4, 0.55, 0.6, 0.65, 0.75, 0.8, 0.85, 0.92, 0.95, 0.97)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prometheus_binary() -> str:
    """The `prometheus` binary, installed through hack/prometheus.sh if missing (fails with its reason)."""
    found = shutil.which("prometheus")
    if found:
        return found
    proc = subprocess.run(["bash", str(INSTALLER)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(
            f"cannot install prometheus with {INSTALLER} (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    return proc.stdout.strip().splitlines()[-1]


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


class TrafficExporter:
    """prometheus_client metrics on a loopback port, fed by a thread from the current Traffic entries."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.port = free_port()
        self.decisions = Counter(
            "fraudops_decisions_total",
            "Decisions.",
            ["source", "variant", "model_version", "outcome", "shadow"],
            registry=self.registry,
        )
        self.errors = Counter(
            "fraudops_scoring_errors_total",
            "Failed scorings.",
            ["source", "variant", "model_version"],
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
                self.decisions.labels("stream", t.variant, t.version, "legitimate", "false").inc(
                    count - failed
                )
                self.errors.labels("stream", t.variant, t.version).inc(failed)
                latency = self.latency.labels(t.model, t.namespace, t.inferenceservice)
                score = self.scores.labels(t.model, t.version, t.namespace, t.inferenceservice)
                for value in itertools.islice(itertools.cycle(t.scores), count):
                    latency.observe(t.latency_s)
                    score.observe(value)


class LocalPrometheus:
    """`prometheus` on a free loopback port with a throw-away config and storage, scraping one target."""

    def __init__(self, target: str) -> None:
        self.binary = prometheus_binary()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="fraudops-prometheus-"))
        config = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
            "scrape_configs": [{"job_name": "fraudops-test", "static_configs": [{"targets": [target]}]}],
        }
        (self.dir / "prometheus.yml").write_bytes(orjson.dumps(config))  # JSON is valid YAML
        self.log_path = self.dir / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60) -> LocalPrometheus:
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.dir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with {self._process.returncode}: {self.log_path.read_text()[-2000:]}"
                )
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response,
            ):
                if response.status == 200:
                    return self
            time.sleep(0.2)
        raise RuntimeError(
            f"prometheus not ready after {timeout_s:.0f}s: {self.log_path.read_text()[-2000:]}"
        )

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as response:
            return list(orjson.loads(response.read())["data"]["result"])

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)
