"""`fraudops demo` (`make demo`): the whole local pipeline, end to end, with a live view and a final report.

infra (PostgreSQL + Kafka) → a model (trained on simulated history if none exists) → the KServe
predictor, the gateway and the stream consumer as local processes → simulated traffic through
Kafka → live: produced, stored, lag, throughput, alerts, frauds caught and missed by pattern,
end-to-end latency → a final report, and a /predict call against the running gateway.

Each run streams through a topic and consumer group of its own (`transactions-demo-<time>`), so
its numbers are this run's alone: a previous run's leftovers never count, nor delay it.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from fraudops.config import Settings, get_settings
from fraudops_cli.models import ensure_model

console = Console(highlight=False)
PREDICTOR_PORT = 8081
GATEWAY_PORT = 8000
METRICS_PORT = 9102
SAMPLE = (
    '{"customer_id": "C000000042", "amount": 1899.0, "merchant_category": "electronics", '
    '"channel": "WEB", "transaction_type": "PURCHASE", "is_international": true, "country": "NG", '
    '"device_id": "dev-new-1", "ip_address": "198.51.100.23"}'
)


@dataclass
class Truth:
    """Ground truth of what the simulator produced (for the caught-vs-missed view only)."""

    pattern_of: dict[str, str] = field(default_factory=dict)
    produced: int = 0
    frauds_by_pattern: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, table: Any) -> None:
        ids = table.column("transaction_id").to_pylist()
        patterns = table.column("fraud_pattern").to_pylist()
        with self.lock:
            for transaction_id, pattern in zip(ids, patterns, strict=True):
                if pattern:
                    self.pattern_of[transaction_id] = pattern
                    self.frauds_by_pattern[pattern] += 1


def _start(name: str, argv: list[str], env: dict[str, str], run_dir: Path) -> int:
    from fraudops_infra.processes import start_detached

    return start_detached(argv, run_dir / f"{name}.log", run_dir / f"{name}.pid", env=env)


def _wait_http(url: str, what: str, timeout_s: float, log: Path) -> None:
    from fraudops_infra.processes import wait_until

    def answers() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    wait_until(answers, timeout_s, what, log)


def _scrape(url: str) -> dict[str, Any]:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            text = response.read().decode()
    except OSError:
        return {}
    samples: dict[str, Any] = {"buckets": []}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "fraudops_consumer_end_to_end_seconds_bucket":
                samples["buckets"].append((float(sample.labels["le"]), sample.value))
            elif sample.name in (
                "fraudops_consumer_records_total",
                "fraudops_consumer_alerts_total",
                "fraudops_consumer_dead_lettered_total",
            ):
                samples[sample.name] = sample.value
            elif sample.name == "fraudops_consumer_lag_records":
                samples["lag"] = samples.get("lag", 0) + sample.value
    return samples


def _quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Upper bound of the histogram bucket holding quantile q (what Prometheus would interpolate)."""
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= q * total:
            if bound == float("inf"):
                return previous_bound
            share = (q * total - previous_count) / max(count - previous_count, 1e-9)
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, count
    return previous_bound


class RunProgress:
    """What this run's consumer has done: durable records (its group's committed offsets), the
    decisions on the simulated frauds, and the alerts raised since the run began."""

    def __init__(
        self, settings: Settings, topic: str, group: str, partitions: int, started_at: datetime
    ) -> None:
        self.settings = settings
        self.topic, self.group, self.partitions = topic, group, partitions
        self.alerts_since = started_at
        self.alerted: set[str] = set()
        self.decided: set[str] = set()

    def stored(self) -> int:
        from fraudops.kafka import client_config
        from fraudops_stream.group import committed_records

        return committed_records(client_config(self.settings), self.group, self.topic, self.partitions)

    def frauds(self, truth: Truth) -> tuple[Counter[str], Counter[str], int]:
        """Caught and missed frauds by pattern, and alerts raised on legitimate transactions."""
        import psycopg

        with truth.lock:
            frauds = dict(truth.pattern_of)
        undecided = [transaction_id for transaction_id in frauds if transaction_id not in self.decided]
        with psycopg.connect(self.settings.db_url, connect_timeout=2) as conn:
            for transaction_id, created_at in conn.execute(
                "SELECT transaction_id, created_at FROM alerts WHERE created_at >= %s", (self.alerts_since,)
            ):
                self.alerted.add(transaction_id)
                self.alerts_since = max(self.alerts_since, created_at)
            self.decided.update(
                row[0]
                for row in conn.execute(
                    "SELECT transaction_id FROM decisions WHERE NOT shadow AND transaction_id = ANY(%s)",
                    (undecided,),
                )
            )
        caught: Counter[str] = Counter()
        missed: Counter[str] = Counter()
        for transaction_id, pattern in frauds.items():
            if transaction_id in self.decided:
                (caught if transaction_id in self.alerted else missed)[pattern] += 1
        return caught, missed, len(self.alerted - set(frauds))


def _demo_topic(settings: Settings) -> tuple[str, str]:
    """A topic and consumer group for this run only (created now; the topic is deleted at the end)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from fraudops.kafka import client_config

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    topic, group = f"{settings.transactions_topic}-demo-{stamp}", f"{settings.consumer_group}-demo-{stamp}"
    admin = AdminClient(client_config(settings))  # alive until the futures end
    for future in admin.create_topics([NewTopic(topic, settings.transactions_partitions, 1)]).values():
        future.result(timeout=30)
    return topic, group


def _delete_topic(settings: Settings, topic: str) -> None:
    from confluent_kafka.admin import AdminClient

    from fraudops.kafka import client_config

    admin = AdminClient(client_config(settings))  # alive until the futures end
    for future in admin.delete_topics([topic], operation_timeout=30).values():
        future.result(timeout=30)


def _view(
    truth: Truth,
    started: float,
    metrics: dict[str, Any],
    stored: int,
    caught: Counter[str],
    missed: Counter[str],
    false_alerts: int,
) -> Group:
    elapsed = max(time.monotonic() - started, 1e-6)
    summary = Table(box=None, show_header=False)
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    p = {q: _quantile(metrics.get("buckets", []), q) for q in (0.5, 0.95, 0.99)}
    latency = " / ".join("–" if v is None else f"{v * 1000:,.0f}" for v in p.values())
    alerts = int(metrics.get("fraudops_consumer_alerts_total", 0))
    for label, value in [
        ("produced", f"{truth.produced:,}"),
        ("stored (decided)", f"{stored:,}"),
        ("consumer lag", f"{int(metrics.get('lag', 0)):,}"),
        ("throughput", f"{stored / elapsed:,.0f} tx/s"),
        ("alerts", f"{alerts:,} ({false_alerts:,} on legitimate transactions)"),
        ("dead-lettered", f"{int(metrics.get('fraudops_consumer_dead_lettered_total', 0)):,}"),
        ("latency p50 / p95 / p99", f"{latency} ms (Kafka → stored decision)"),
    ]:
        summary.add_row(label, value)
    patterns = Table(title="frauds by pattern", box=None, title_justify="left")
    for column in ("pattern", "caught", "missed", "recall"):
        patterns.add_column(column, justify="left" if column == "pattern" else "right")
    for pattern in sorted(set(caught) | set(missed)):
        total = caught[pattern] + missed[pattern]
        patterns.add_row(
            pattern,
            str(caught[pattern]),
            str(missed[pattern]),
            f"{caught[pattern] / total:.0%}" if total else "–",
        )
    total_caught, total_missed = sum(caught.values()), sum(missed.values())
    if total_caught + total_missed:
        patterns.add_row(
            "[bold]all[/]",
            f"[bold]{total_caught}[/]",
            f"[bold]{total_missed}[/]",
            f"[bold]{total_caught / (total_caught + total_missed):.0%}[/]",
        )
    return Group(summary, patterns)


def demo(
    rate: Annotated[int, typer.Option(min=100, help="Simulated transactions per second.")] = 2000,
    duration: Annotated[int, typer.Option(min=5, help="Seconds of simulated traffic.")] = 60,
    keep_running: Annotated[
        bool, typer.Option(help="Leave predictor, gateway and consumer running.")
    ] = False,
    gateway_port: Annotated[int, typer.Option(min=1, max=65535)] = GATEWAY_PORT,
    predictor_port: Annotated[int, typer.Option(min=1, max=65535)] = PREDICTOR_PORT,
    metrics_port: Annotated[
        int, typer.Option(min=1, max=65535, help="The consumer's metrics.")
    ] = METRICS_PORT,
) -> None:
    """Run the whole pipeline locally and watch it work."""
    from fraudops.kafka import client_config
    from fraudops_infra.processes import fraudops_command, read_pid, stop_tree
    from fraudops_infra.stack import LocalStack
    from fraudops_simulator import SimulationConfig, simulate
    from fraudops_simulator.kafka import PRODUCER_DEFAULTS, check_broker, publish

    settings = get_settings()
    with console.status("starting PostgreSQL and Kafka…"):
        for name, outcome in LocalStack(settings).up():
            console.print(f"[green]✓[/] {name:<9} {outcome}")
    model_uri = ensure_model(settings, console)
    console.print(f"[green]✓[/] model     {model_uri}")

    run_dir = settings.run_dir.resolve() / "demo"
    run_dir.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC)
    topic, group = _demo_topic(settings)
    console.print(f"[green]✓[/] topic     {topic} (consumer group {group})")
    env = {
        **os.environ,
        "MODEL_PATH": model_uri,
        "LOG_FORMAT": "json",
        "BATCH_SIZE": "2000",
        "TRANSACTIONS_TOPIC": topic,
        "CONSUMER_GROUP": group,
    }
    services = {
        "predictor": fraudops_command("serve", "predictor", "--port", str(predictor_port)),
        "gateway": fraudops_command("serve", "gateway", "--port", str(gateway_port)),
        "consumer": fraudops_command("stream", "consume", "--metrics-port", str(metrics_port)),
    }
    for name in services:  # a previous demo's processes, if any, make way
        pid = read_pid(run_dir / f"{name}.pid")
        if pid is not None:
            stop_tree(pid)
    pids = {name: _start(name, argv, env, run_dir) for name, argv in services.items()}
    progress = RunProgress(settings, topic, group, settings.transactions_partitions, started_at)
    try:
        with console.status("waiting for the predictor, the gateway and the consumer…"):
            _wait_http(
                f"http://127.0.0.1:{predictor_port}/v2/health/ready",
                "predictor",
                90,
                run_dir / "predictor.log",
            )
            _wait_http(
                f"http://127.0.0.1:{gateway_port}/health/ready", "gateway", 90, run_dir / "gateway.log"
            )
            _wait_http(f"http://127.0.0.1:{metrics_port}/metrics", "consumer", 90, run_dir / "consumer.log")
        console.print(
            f"[green]✓[/] predictor http://127.0.0.1:{predictor_port}  gateway "
            f"http://127.0.0.1:{gateway_port}  consumer metrics http://127.0.0.1:{metrics_port}/metrics"
        )

        truth = Truth()
        config = client_config(settings, **PRODUCER_DEFAULTS)
        check_broker(config, topic)
        simulation = SimulationConfig(
            transactions=rate * duration,
            customers=max(rate * duration // 60, 1000),
            days=30,
            seed=int(time.time()) % 10_000,
        )

        def produced(count: int) -> None:
            truth.produced = count

        publisher = threading.Thread(
            target=publish,
            daemon=True,
            kwargs={
                "tables": simulate(simulation),
                "config": config,
                "topic": topic,
                "rate": rate,
                "on_progress": produced,
                "on_published": truth.add,
            },
        )
        started = time.monotonic()
        publisher.start()
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        with Live(console=console, refresh_per_second=2) as live:
            while True:
                stored = progress.stored()
                live.update(_view(truth, started, _scrape(metrics_url), stored, *progress.frauds(truth)))
                if not publisher.is_alive() and stored >= truth.produced:
                    break
                if not publisher.is_alive() and time.monotonic() - started > duration + 120:
                    console.print("[yellow]the consumer did not catch up within two minutes[/]")
                    break
                time.sleep(1)
        console.print()
        console.rule("final report")
        console.print(_view(truth, started, _scrape(metrics_url), progress.stored(), *progress.frauds(truth)))
        console.print("\nA synchronous decision from the gateway:")
        console.print(
            f"  curl -s -X POST http://127.0.0.1:{gateway_port}/predict "
            f"-H 'Content-Type: application/json' -d '{SAMPLE}'",
            soft_wrap=True,
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{gateway_port}/predict",
            data=SAMPLE.encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            console.print(f"  → {response.read().decode()}", soft_wrap=True)
    finally:
        if not keep_running:
            for name, pid in pids.items():
                stop_tree(pid)
                (run_dir / f"{name}.pid").unlink(missing_ok=True)
            _delete_topic(settings, topic)
            console.print(
                f"[dim]services stopped; logs in {run_dir}. PostgreSQL and Kafka keep running: "
                "`fraudops infra down` stops them.[/]"
            )
        else:
            console.print(
                f"[dim]services keep running (pids in {run_dir}); `fraudops infra down` stops the infra.[/]"
            )
