"""A real Prometheus (Debian's package, installed by hack/prometheus.sh) on a free loopback port.

It scrapes the targets a test gives it every second (by job name, so `up{job=...}` reads as in a
cluster), optionally evaluates rule files, and answers PromQL through its HTTP API.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from tests.waiting import ProcessExited, WaitTimedOut, wait_until

REPO_ROOT = Path(__file__).resolve().parents[1]
INSTALLER = REPO_ROOT / "hack" / "prometheus.sh"
SCRAPE_INTERVAL = "1s"


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


class LocalPrometheus:
    """`prometheus` on a free loopback port with a throw-away config and storage.

    `targets` is one host:port (job `fraudops-test`) or {job name: [host:port, ...]}; `rule_files` are
    evaluated every second.
    """

    def __init__(self, targets: str | Mapping[str, Sequence[str]], rule_files: Sequence[Path] = ()) -> None:
        self.binary = prometheus_binary()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="fraudops-prometheus-"))
        jobs = {"fraudops-test": [targets]} if isinstance(targets, str) else dict(targets)
        config: dict[str, Any] = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": list(hosts)}]} for job, hosts in jobs.items()
            ],
            "rule_files": [str(path) for path in rule_files],
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
        try:
            wait_until(
                self._ready, timeout_s, "prometheus to be ready", interval_s=0.2, alive=[self._process]
            )
        except (ProcessExited, WaitTimedOut) as failed:
            raise RuntimeError(f"{failed}: {self.log_path.read_text()[-2000:]}") from None
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as response:
            return list(orjson.loads(response.read())["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts the rules have pending or firing now."""
        with urllib.request.urlopen(f"{self.url}/api/v1/alerts", timeout=5) as response:
            return list(orjson.loads(response.read())["data"]["alerts"])

    def scrape_errors(self) -> dict[str, str]:
        """{scrape URL: last error} of every target whose last scrape failed or has not happened yet."""
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=5) as response:
            active = orjson.loads(response.read())["data"]["activeTargets"]
        return {t["scrapeUrl"]: t["lastError"] or t["health"] for t in active if t["health"] != "up"}

    def rules(self) -> list[dict[str, Any]]:
        """Every rule of every group, with its health and last evaluation."""
        with urllib.request.urlopen(f"{self.url}/api/v1/rules", timeout=5) as response:
            groups = orjson.loads(response.read())["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)
