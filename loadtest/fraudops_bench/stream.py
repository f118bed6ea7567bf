"""Streaming benchmarks: one consumer process through the full path (features, scoring, PostgreSQL, alerts).

(a) drain — pre-load N transactions, then measure the consumer's sustained throughput and its memory
    with the state of every customer in the load;
(b) latency — a fixed offered load for a fixed duration, after a warm-up at the same load that is
    not counted; end-to-end latency from the record entering Kafka (its timestamp) to its decision
    being stored, read from the consumer's own histogram. The measured run continues the warm-up's
    simulated history, and the share of transactions alerted on is recorded beside the latency: a
    bank's stream alerts on a few in a hundred (2-5% here).

With `entity_features`, a model trained on the entity-risk features is served and the entity-state
component (`fraudops stream entities`) runs next to the consumer as its own process, on the same
cores: the consumer waits for the component's published table at each record's epoch. The latency
run then streams transactions that happen now (event times follow the sending schedule): the
component closes an epoch when every partition has passed it, and a history compressed into a
minute would close thousands of epochs a second, a load no bank's clock produces.

The broker and PostgreSQL are the local ones (`fraudops infra up`), on the same two cores.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import psycopg
import pyarrow as pa
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from fraudops.artifact import load_artifact
from fraudops.config import Settings
from fraudops.db import migrate
from fraudops.features.spec import DAY, FeatureConfig
from fraudops.kafka import client_config
from fraudops_bench.gateway import EntityTableLane
from fraudops_bench.results import Measurement
from fraudops_infra.processes import fraudops_command
from fraudops_simulator import SimulationConfig, simulate
from fraudops_simulator.kafka import PRODUCER_DEFAULTS, publish
from fraudops_stream.group import committed_records


@dataclass
class Lane:
    """A private topic and database for one benchmark run, on the local infrastructure."""

    settings: Settings
    topic: str
    db_url: str

    @classmethod
    def create(cls, settings: Settings, partitions: int = 6) -> Lane:
        suffix = uuid.uuid4().hex[:8]
        topic = f"bench-{suffix}"
        admin = AdminClient(client_config(settings))
        for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
            future.result(timeout=30)
        base = settings.db_url.rsplit("/", 1)[0]
        database = f"bench_{suffix}"
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {database}")
        db_url = f"{base}/{database}"
        migrate.upgrade(db_url)
        return cls(settings, topic, db_url)

    def drop(self) -> None:
        base = self.db_url.rsplit("/", 1)[0]
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {self.db_url.rsplit('/', 1)[1]} WITH (FORCE)")
        admin = AdminClient(client_config(self.settings))  # alive until the deletion is sent
        for future in admin.delete_topics([self.topic]).values():
            future.result(timeout=30)

    def stored(self) -> int:
        with psycopg.connect(self.db_url) as conn:
            return int(conn.execute("SELECT count(*) FROM transactions").fetchone()[0])

    def committed(self, partitions: int = 6) -> int:
        """Records the consumer stored durably (a count(*) over the growing table while the run goes
        on would take PostgreSQL CPU from it)."""
        return committed_records(client_config(self.settings), f"g-{self.topic}", self.topic, partitions)

    def environment(self, model_path: str, **more: str) -> dict[str, str]:
        return {
            **os.environ,
            "DB_URL": self.db_url,
            "TRANSACTIONS_TOPIC": self.topic,
            "MODEL_PATH": model_path,
            "CONSUMER_GROUP": f"g-{self.topic}",
            "LOG_LEVEL": "WARNING",
            "KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka_bootstrap_servers,
            "ALERTS_TOPIC": self.settings.alerts_topic,
            "DLQ_TOPIC": self.settings.dlq_topic,
            **more,
        }

    def consumer(
        self, model_path: str, batch_size: int, metrics_port: int, log: Path, entity_table: bool = False
    ) -> subprocess.Popen:
        env = self.environment(
            model_path, BATCH_SIZE=str(batch_size), ENTITY_TABLE="true" if entity_table else "false"
        )
        return subprocess.Popen(
            fraudops_command(
                "stream", "consume", "--metrics-port", str(metrics_port), "--checkpoint-interval", "30"
            ),
            env=env,
            stdout=open(log, "wb"),
            stderr=subprocess.STDOUT,
        )

    def entity_state(self, model_path: str, log: Path, *options: str) -> subprocess.Popen:
        """The entity-state component with the model's settings, keeping 40 days of deltas: a consumer
        days of event time behind it (the drain) still reads every record at its own epoch."""
        trained = FeatureConfig.from_dict(load_artifact(model_path).metadata.feature_config)
        return subprocess.Popen(
            fraudops_command(
                *("stream", "entities", "--metrics-port", "0", "--retain-epochs", str(40 * 1440)),
                *("--label-delay-days", f"{trained.label_delay_s / DAY:g}"),
                *("--epoch-seconds", f"{trained.entity_epoch_s:g}"),
                *options,
            ),
            env=self.environment(model_path),
            stdout=open(log, "wb"),
            stderr=subprocess.STDOUT,
        )

    def publish(
        self,
        transactions: int,
        customers: int,
        rate: float = 0.0,
        seed: int = 5,
        live_from: float | None = None,
        events_per_second: float | None = None,
        history: pa.Table | None = None,
    ) -> float:
        """Simulated transactions of 30 days, sent at `rate` (0: as fast as the broker takes them). With
        `live_from` (a Unix time) they happen at `events_per_second` (default `rate`) from then on instead:
        the i-th one at `live_from + i / events_per_second` — at a paced producer's send time. `history`:
        these rows instead of a new simulation."""
        config = client_config(self.settings, **PRODUCER_DEFAULTS)
        tables: Iterable[pa.Table] = (
            simulate(SimulationConfig(transactions=transactions, customers=customers, days=30, seed=seed))
            if history is None
            else (history.slice(start, 10_000) for start in range(0, history.num_rows, 10_000))
        )
        report = publish(
            tables if live_from is None else happening_now(tables, live_from, events_per_second or rate),
            config=config,
            topic=self.topic,
            rate=rate,
        )
        if report.failed or report.unflushed:
            raise RuntimeError(f"publishing failed: {report.first_error}")
        return report.messages_per_second

    def alerted(self) -> int:
        with psycopg.connect(self.db_url) as conn:
            return int(conn.execute("SELECT count(*) FROM alerts").fetchone()[0])


@contextmanager
def published_entity_table(
    settings: Settings, model_path: str, transactions: int = 200_000, customers: int = 5_000, seed: int = 21
) -> Iterator[EntityTableLane]:
    """A database holding the table the entity-state component published from `transactions` simulated
    ones of 30 days — the world the gateway benchmark's requests come from (its customers and seed) —
    until the block ends."""
    lane = Lane.create(settings)
    log = settings.run_dir / "bench-entity-table.log"
    try:
        lane.publish(transactions, customers, seed=seed)
        component = lane.entity_state(model_path, log, "--idle-exit", "5")
        if component.wait(timeout=1800) != 0:
            raise RuntimeError(f"the entity-state component exited with {component.returncode}; see {log}")
        yield EntityTableLane(lane.db_url, lane.topic)
    finally:
        lane.drop()


def happening_now(tables: Iterable[pa.Table], start: float, rate: float) -> Iterator[pa.Table]:
    """The tables with the i-th row's event time set to `start + i / rate` (order kept)."""
    sent = 0
    for table in tables:
        seconds = start + (sent + np.arange(table.num_rows)) / rate
        times = pa.array((seconds * 1e6).astype(np.int64)).cast(table.schema.field("event_time").type)
        yield table.set_column(table.schema.get_field_index("event_time"), "event_time", times)
        sent += table.num_rows


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=120)


def drain(
    settings: Settings,
    model_path: str,
    transactions: int = 300_000,
    customers: int = 100_000,
    batch_size: int = 5000,
    entity_features: bool = False,
    events_per_second: float | None = None,
) -> Measurement:
    """`events_per_second`: the backlog happened at this rate up to now (the bank's rate while the consumer
    was away), instead of spread over 30 days. The entity table closes one epoch per minute of event
    time, so the density decides how many epochs the backlog spans."""
    lane = Lane.create(settings)
    log = settings.run_dir / "bench-drain-consumer.log"
    component_log = settings.run_dir / "bench-drain-entity-state.log"
    helpers: list[subprocess.Popen] = []
    try:
        if events_per_second is None:
            lane.publish(transactions, customers)
        else:
            backlog_s = transactions / events_per_second
            lane.publish(
                transactions,
                customers,
                live_from=time.time() - backlog_s,
                events_per_second=events_per_second,
            )
        if entity_features:
            helpers.append(lane.entity_state(model_path, component_log))
        consumer = lane.consumer(model_path, batch_size, 0, log, entity_table=entity_features)
        watched = [psutil.Process(p.pid) for p in (consumer, *helpers)]
        peak_rss = [0] * len(watched)
        first_at = None
        stored = 0
        deadline = time.monotonic() + 1800
        while stored < transactions and time.monotonic() < deadline:
            for process, popen_log in ((consumer, log), *((h, component_log) for h in helpers)):
                if process.poll() is not None:
                    raise RuntimeError(f"a process exited with {process.returncode}; see {popen_log}")
            stored = lane.committed()
            if stored and first_at is None:
                first_at, first_count = time.monotonic(), stored
            peak_rss = [max(peak, p.memory_info().rss) for peak, p in zip(peak_rss, watched, strict=True)]
            time.sleep(0.25)
        finished_at = time.monotonic()
        peak_rss = [max(peak, p.memory_info().rss) for peak, p in zip(peak_rss, watched, strict=True)]
        component_cpu_s = sum(sum(p.cpu_times()[:2]) for p in watched[1:])
        _stop(consumer)
        for helper in helpers:
            _stop(helper)
        stored = lane.stored()  # what PostgreSQL holds: exactly one row per transaction
        alerted = lane.alerted()
    finally:
        for helper in helpers:
            helper.kill()
        lane.drop()
    if stored != transactions or first_at is None:
        raise RuntimeError(f"{stored:,} of {transactions:,} transactions were stored; see {log}")
    rate = (transactions - first_count) / (finished_at - first_at)
    numbers = {"transactions_per_second": rate, "peak_rss_mib": peak_rss[0] / 2**20}
    units = {"transactions_per_second": "tx/s", "peak_rss_mib": "MiB"}
    timeline = "over 30 days" if events_per_second is None else f"at {events_per_second:g} tx/s of event time"
    description = (
        f"one consumer drains {transactions:,} pre-loaded transactions ({timeline}) of {customers:,} customers "
        "(decode, features, XGBoost, PostgreSQL COPY + upsert, alerts, offset commits)"
    )
    if entity_features:
        numbers["entity_state_peak_rss_mib"] = peak_rss[1] / 2**20
        units["entity_state_peak_rss_mib"] = "MiB"
        description += (
            ", with the entity features: a model trained on them and the entity-state component "
            "running alongside (the consumer waits for its table at each record's epoch)"
        )
    suffix = "" if events_per_second is None else f"_{events_per_second:g}_per_s"
    return Measurement(
        name=("stream_drain_entity" if entity_features else "stream_drain") + suffix,
        description=description,
        numbers=numbers,
        units=units,
        targets={"transactions_per_second": ">= 10000", "peak_rss_mib": "<= 1024"},
        details={
            "transactions": transactions,
            "customers": customers,
            "batch_size": batch_size,
            "events_per_second": events_per_second,
            # each alert is a reason set, a row and a message: the share weighs on the rate
            "alerted_share": alerted / transactions,
            **({"entity_state_cpu_seconds": round(component_cpu_s, 1)} if entity_features else {}),
        },
    )


def _e2e_histogram(port: int) -> list[tuple[float, float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        text = response.read().decode()
    return [
        (float(s.labels["le"]), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "fraudops_consumer_end_to_end_seconds_bucket"
    ]


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket holding the quantile."""
    buckets = sorted(buckets)
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / max(
                count - lower_count, 1e-12
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def latency(
    settings: Settings,
    model_path: str,
    rate: int = 2000,
    seconds: int = 60,
    batch_size: int = 1000,
    metrics_port: int | None = None,
    warmup_s: int = 10,
    entity_features: bool = False,
    customers: int | None = None,
) -> Measurement:
    from fraudops_bench.servers import free_port

    metrics_port = metrics_port or free_port()  # never another process's metrics
    lane = Lane.create(settings)
    log = settings.run_dir / "bench-latency-consumer.log"
    component = None
    try:
        if entity_features:
            component = lane.entity_state(model_path, settings.run_dir / "bench-latency-entity-state.log")
        consumer = lane.consumer(model_path, batch_size, metrics_port, log, entity_table=entity_features)
        deadline = time.monotonic() + 120
        while True:  # ready when its metrics answer and it owns partitions
            try:
                _e2e_histogram(metrics_port)
                break
            except OSError:
                if time.monotonic() > deadline or consumer.poll() is not None:
                    raise RuntimeError(f"the consumer did not start; see {log}") from None
                time.sleep(0.5)
        # Warm-up at the same rate (not counted): the consumer's first batches load compiled code and
        # grow its state tables, and the publisher starts with a burst while it catches up with its
        # schedule. The measured run continues the same history: each customer's transactions go on
        # forward in time, as a bank's do (a second simulation of the same 30 days would send every
        # customer back in time, and the model would flag a third of the stream).
        warmup = rate * warmup_s
        transactions = rate * seconds
        # Happening now, the run's 70 s carry what the simulation spreads over 30 days. With as many
        # customers as transactions, each pays about once in the run, as a bank's customers do in a
        # minute; with 6,000, each paid 23 times in a minute and the model flagged 81% of the stream as
        # card testing (every flag a reason set, an alert row and an alert message).
        default_customers = warmup + transactions if entity_features else max(transactions // 20, 1000)
        history = pa.concat_tables(
            simulate(
                SimulationConfig(
                    transactions=warmup + transactions,
                    customers=customers or default_customers,
                    days=30,
                    seed=7,
                )
            )
        )

        def live() -> float | None:  # with entity features: transactions happening from now on
            return time.time() if entity_features else None

        lane.publish(warmup, 0, rate=rate, live_from=live(), history=history.slice(0, warmup))
        while lane.committed() < warmup:
            time.sleep(0.1)
        before = _e2e_histogram(metrics_port)
        achieved: list[float] = []
        producer = threading.Thread(
            target=lambda: achieved.append(
                lane.publish(transactions, 0, rate=rate, live_from=live(), history=history.slice(warmup))
            )
        )
        started = time.monotonic()
        producer.start()
        producer.join()
        offered_seconds = time.monotonic() - started
        wait_until = time.monotonic() + 60
        while lane.committed() < warmup + transactions and time.monotonic() < wait_until:
            time.sleep(0.25)
        after = _e2e_histogram(metrics_port)
        _stop(consumer)
        if component is not None:
            _stop(component)
        stored = lane.stored() - warmup
        alerted = lane.alerted()
    finally:
        if component is not None:
            component.kill()
        lane.drop()
    counts_before = dict(before)
    buckets = [(bound, count - counts_before.get(bound, 0.0)) for bound, count in after]
    quantiles = {f"p{int(q * 100)}_ms": histogram_quantile(buckets, q) * 1000 for q in (0.5, 0.95, 0.99)}
    return Measurement(
        name="stream_latency_entity" if entity_features else "stream_latency",
        description=f"{rate:,} transactions/s offered for {seconds} s to one consumer; end-to-end latency "
        "from the Kafka record timestamp to the decision stored in PostgreSQL"
        + (
            "; with the entity features (the entity-state component alongside, transactions happening now)"
            if entity_features
            else ""
        ),
        numbers={**quantiles, "throughput_per_second": stored / offered_seconds, "stored": stored},
        units={
            "p50_ms": "ms",
            "p95_ms": "ms",
            "p99_ms": "ms",
            "throughput_per_second": "tx/s",
            "stored": "tx",
        },
        targets={"p99_ms": "<= 250", "stored": f">= {transactions}"},
        details={
            "offered_rate": rate,
            "seconds": seconds,
            "publisher_rate": achieved[0] if achieved else None,
            "batch_size": batch_size,
            "warmup_transactions_not_counted": warmup,
            "customers": len(history.column("customer_id").unique()),
            # A bank's stream alerts on a few in a hundred; each alert is a reason set, a row and a message.
            "alerted_share": alerted / (warmup + transactions),
        },
    )
