"""Support for the stream tests (no tests here): topics, records, consumers and predictors as real processes.

Consumers run as `python -m fraudops_cli.main stream consume`, predictors as `… serve predictor`,
exactly as an operator starts them, each logging to a file. Every process a test starts is tracked
here, and the fixture that owns them checks that none outlives its test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import yaml
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from fraudops.artifact import load_artifact
from fraudops.config import Settings
from fraudops.db import migrate
from fraudops.features.encode import encode_records
from fraudops.features.engine import FeatureEngine, LabelEvents
from fraudops.features.spec import FeatureConfig
from fraudops.scoring import Scorer
from fraudops_infra.processes import fraudops_command
from fraudops_infra.stack import LocalStack
from fraudops_stream.decode import decode_batch
from fraudops_stream.group import coordinator_moving
from tests.conftest import REPO_ROOT
from tests.integration.conftest import free_port
from tests.waiting import wait_until

MODEL_NAME = "card-fraud"


@dataclass
class StreamSetup:
    env: dict[str, str]
    topic: str
    alerts: str
    dlq: str
    group: str
    db_url: str
    bootstrap: str
    logs: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def consumer(
        self,
        name: str,
        checkpoint_s: float = 2.0,
        metrics_port: int = 0,
        args: tuple[str, ...] = (),
        **env: str,
    ) -> subprocess.Popen:
        """`fraudops stream consume` as a process of its own, logging to `<logs>/<name>.log`."""
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the process owns it until it ends
        proc = subprocess.Popen(
            consume_command(metrics_port, "--checkpoint-interval", str(checkpoint_s), *args),
            env={**self.env, **env},
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(proc)
        return proc

    def settings(self, artifact: Path) -> Settings:
        """Settings of a consumer of this setup run in the test's own process."""
        return Settings(
            db_url=self.db_url,
            kafka_bootstrap_servers=self.bootstrap,
            transactions_topic=self.topic,
            alerts_topic=self.alerts,
            dlq_topic=self.dlq,
            consumer_group=self.group,
            model_path=str(artifact),
        )

    def entity_state(self, name: str, *args: str, metrics_port: int = 0, **env: str) -> subprocess.Popen:
        """`fraudops stream entities` (the entity-state component) as a process of its own."""
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the process owns it until it ends
        proc = subprocess.Popen(
            fraudops_command("stream", "entities", "--metrics-port", str(metrics_port), *args),
            env={**self.env, **env},
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(proc)
        return proc

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for_log(
        self, name: str, text: str, timeout_s: float, alive: Iterable[subprocess.Popen] = ()
    ) -> None:
        """Until consumer `name`'s log says `text`; fails at once when a process in `alive` exits."""
        wait_until(
            lambda: text in self.log(name),
            timeout_s,
            f"consumer {name}'s log to say {text!r}",
            interval_s=0.5,
            alive=alive,
        )

    def leftovers(self) -> list[int]:
        """Processes started here that still run; they are stopped (the test fails on them)."""
        alive = [proc for proc in self.processes if proc.poll() is None]
        for proc in alive:
            proc.kill()
            proc.wait(timeout=30)
        return [proc.pid for proc in alive]


@contextmanager
def stream_test(
    stack: LocalStack, database: str, artifact: Path, logs: Path, partitions: int = 6, **env: str
) -> Iterator[StreamSetup]:
    """`new_setup` on `database`, migrated first; the test fails if a process it started outlives it."""
    migrate.upgrade(database)
    setup = new_setup(stack.kafka.bootstrap, database, artifact, logs, partitions, **env)
    yield setup
    assert not setup.leftovers(), "a process outlived its test"


def new_setup(
    bootstrap: str, db_url: str, artifact: Path, logs: Path, partitions: int = 6, **env: str
) -> StreamSetup:
    """Fresh topics and a fresh consumer group for one test, against a migrated database."""
    topics = fresh_topics(bootstrap, partitions)
    environment = {
        **os.environ,
        "DB_URL": db_url,
        **topics.environment(),
        "MODEL_PATH": str(artifact),
        "BATCH_SIZE": "1000",
        "LOG_FORMAT": "json",
        **env,
    }
    return StreamSetup(
        environment, topics.topic, topics.alerts, topics.dlq, topics.group, db_url, bootstrap, logs
    )


@dataclass(frozen=True)
class StreamTopics:
    """The transactions, alerts and dead-letter topics and the consumer group of one test."""

    bootstrap: str
    topic: str
    alerts: str
    dlq: str
    group: str

    def environment(self) -> dict[str, str]:
        """The Kafka settings of a consumer (or simulator) that works on these topics."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "TRANSACTIONS_TOPIC": self.topic,
            "ALERTS_TOPIC": self.alerts,
            "DLQ_TOPIC": self.dlq,
            "CONSUMER_GROUP": self.group,
        }


def fresh_topics(bootstrap: str, partitions: int = 6) -> StreamTopics:
    """New topics (alerts and dead letters with one partition) and group, named apart by a random suffix."""
    suffix = uuid.uuid4().hex[:8]
    topics = StreamTopics(bootstrap, f"tx-{suffix}", f"alerts-{suffix}", f"dlq-{suffix}", f"g-{suffix}")
    create_topics(bootstrap, [(topics.topic, partitions), (topics.alerts, 1), (topics.dlq, 1)])
    return topics


def consume_command(metrics_port: int, *options: str) -> list[str]:
    """`fraudops stream consume` as the tests run it: this Python, the CLI module, its metrics port."""
    return fraudops_command("stream", "consume", "--metrics-port", str(metrics_port), *options)


def create_topics(bootstrap: str, topics: Iterable[tuple[str, int]]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [
            NewTopic(name, partitions, 1, config={"max.message.bytes": str(8 * 2**20)})
            for name, partitions in topics
        ]
    )
    for future in futures.values():
        future.result(timeout=60)


def simulated_records(transactions: int, seed: int) -> list[tuple[str, bytes]]:
    """(customer key, JSON value) in event-time order, from the real simulator."""
    from fraudops_simulator import SimulationConfig, simulate
    from fraudops_simulator.kafka import encode_records as encode_json

    records = []
    # At least 50 customers: the simulator fails on a handful (its trips table can be empty).
    for table in simulate(
        SimulationConfig(transactions=transactions, customers=max(transactions // 50, 50), days=20, seed=seed)
    ):
        keys = table.column("customer_id").to_pylist()
        records.extend(zip(keys, encode_json(table), strict=True))
    return records


def producer(bootstrap: str) -> Producer:
    """A plain producer, as any client of the platform would use (large records allowed)."""
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "compression.type": "lz4",
            "enable.idempotence": True,
            "message.max.bytes": 8 * 2**20,
        }
    )


def produce(bootstrap: str, topic: str, records: Iterable[tuple[str | None, bytes | None]]) -> None:
    out = producer(bootstrap)
    for key, value in records:
        while True:
            try:
                out.produce(topic, value, key)
                break
            except BufferError:
                out.poll(0.05)
    assert out.flush(120) == 0


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 60) -> list:
    """Every record of `topic` from the beginning (until `expected` are read or the time is up)."""
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    reader.subscribe([topic])
    messages = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            messages += [m for m in reader.consume(num_messages=1000, timeout=1.0) if m.error() is None]
    finally:
        reader.close()
    return messages


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ends-{uuid.uuid4().hex[:6]}"})
    try:
        partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        reader.close()


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets; asked again for up to 30 s while the coordinator is moving."""
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions

        def ask() -> dict[int, int] | None:
            try:
                answered = reader.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
            except KafkaException as exc:
                if coordinator_moving(exc) or exc.args[0].retriable():
                    return None
                raise
            return {tp.partition: tp.offset for tp in answered}

        return wait_until(ask, 30, f"group {group}'s committed offsets", interval_s=0.5)
    finally:
        reader.close()


def wait_until_caught_up(setup: StreamSetup, timeout_s: float, procs: Iterable[subprocess.Popen]) -> None:
    """Until the group's committed offsets reach the end of every partition (zero lag)."""
    wait_until(
        lambda: (
            committed(setup.bootstrap, setup.group, setup.topic) == end_offsets(setup.bootstrap, setup.topic)
        ),
        timeout_s,
        "the group's committed offsets to reach the partitions' ends",
        interval_s=0.5,
        alive=procs,
    )


def finish_after_joining(
    setup: StreamSetup,
    joiner: str,
    consumers: list[subprocess.Popen],
    rest: Iterable[tuple[str, bytes]],
    total: int,
) -> None:
    """Once consumer `joiner` has its partitions (and their state): produce the rest of the records and
    wait until the group has stored all `total` and caught up."""
    setup.wait_for_log(joiner, "partition assigned", 180, alive=consumers)
    produce(setup.bootstrap, setup.topic, rest)
    assert wait_for_count(setup.db_url, total, 240, consumers) == total
    wait_until_caught_up(setup, 120, consumers)


def stored_count(db_url: str) -> int:
    with psycopg.connect(db_url, connect_timeout=3) as conn:
        return int(conn.execute("SELECT count(*) FROM transactions WHERE source = 'stream'").fetchone()[0])


def wait_for_count(db_url: str, expected: int, timeout_s: float, procs: Iterable[subprocess.Popen]) -> int:
    counts = [0]

    def reached() -> bool:
        counts[0] = stored_count(db_url)
        return counts[0] >= expected

    wait_until(
        reached,
        timeout_s,
        lambda: f"{expected} stored transactions (have {counts[0]})",
        interval_s=0.5,
        alive=procs,
    )
    return counts[0]


def stop(proc: subprocess.Popen, timeout_s: float = 90) -> int:
    """SIGTERM and wait for the process to finish its batch and exit; returns its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout_s)


def metric(url: str, name: str) -> float:
    """The sum of a metric's samples on a Prometheus endpoint."""
    text = httpx.get(url, timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


# --- the predictor (remote scoring) -------------------------------------------------------------------


@dataclass
class Predictor:
    """`fraudops serve predictor` on a fixed port, so it can be killed and started again at the same address."""

    artifact: Path
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 180) -> None:
        with open(self.log, "ab") as output:
            self.process = subprocess.Popen(
                fraudops_command(
                    "serve",
                    "predictor",
                    "--model-uri",
                    str(self.artifact),
                    "--name",
                    MODEL_NAME,
                    "--port",
                    str(self.port),
                ),
                env={**os.environ, "LOG_FORMAT": "json"},
                cwd=REPO_ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        process = self.process

        def ready() -> bool:
            try:
                return httpx.get(f"{self.endpoint}/v2/health/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(
            ready,
            timeout_s,
            lambda: f"the predictor to be ready:\n{self.log.read_text()[-3000:]}",
            interval_s=0.5,
            alive=[process],
        )

    def kill(self) -> None:
        """kill -9: no goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


def remote_routing_table(path: Path, endpoint: str) -> Path:
    """A routing table whose stable variant is scored by the predictor at `endpoint` (KServe V2)."""
    path.write_text(
        yaml.safe_dump(
            {
                "model_name": MODEL_NAME,
                "salt": "tests",
                "variants": [
                    {"name": "stable", "model_version": "test-v1", "weight": 100, "endpoint": endpoint}
                ],
            }
        )
    )
    return path


# --- the reference: an uninterrupted offline pass -----------------------------------------------------


def reference_run(
    values: Iterable[bytes | None],
    artifact: Path,
    labels: LabelEvents | None = None,
    entity_table: bool = False,
) -> tuple[dict[str, float], FeatureEngine]:
    """The uninterrupted offline pass over the records in order, with these fraud labels merged in by
    the time they became known (and with `entity_table`, the entity table training's replay keeps):
    scores per transaction id, and the engine."""
    loaded = load_artifact(str(artifact))
    engine = FeatureEngine(FeatureConfig.from_dict(loaded.metadata.feature_config), entity_table=entity_table)
    if labels is not None:
        engine.add_fraud_labels(labels)
    scorer = Scorer(loaded)
    scores: dict[str, float] = {}
    chunk: list[bytes | None] = []

    def flush() -> None:
        _, decoded, _ = decode_batch(chunk)
        if decoded:
            features = engine.transform(encode_records(decoded))
            for record, score in zip(decoded, scorer.score(features), strict=True):
                scores[record["transaction_id"]] = float(score)
        chunk.clear()

    for value in values:
        chunk.append(value)
        if len(chunk) == 5000:
            flush()
    flush()
    return scores, engine


@dataclass
class Comparison:
    expected: int
    stored: int
    duplicates: int
    missing: list[str]
    unexpected: list[str]
    score_mismatches: list[str]
    state_mismatches: list[str]
    states: int


def compare_with_reference(
    db_url: str,
    values: Iterable[bytes | None],
    artifact: Path,
    topic: str,
    labels: LabelEvents | None = None,
    entity_table: bool = False,
) -> Comparison:
    """The stored decisions and checkpointed states against the uninterrupted offline pass, value for value."""
    expected, engine = reference_run(values, artifact, labels, entity_table)
    with psycopg.connect(db_url) as conn:
        stored = dict(
            conn.execute(
                "SELECT transaction_id, score FROM decisions WHERE NOT shadow AND source = 'stream'"
            ).fetchall()
        )
        duplicates = conn.execute(
            "SELECT count(*) - count(DISTINCT transaction_id) FROM transactions"
        ).fetchone()[0]
        states = dict(
            conn.execute(
                "SELECT customer_id, state FROM customer_feature_state WHERE topic = %s", (topic,)
            ).fetchall()
        )
    reference_rows = dict(engine.export_customers(states))
    return Comparison(
        expected=len(expected),
        stored=len(stored),
        duplicates=int(duplicates),
        missing=sorted(set(expected) - set(stored)),
        unexpected=sorted(set(stored) - set(expected)),
        score_mismatches=[
            tx for tx, score in expected.items() if tx in stored and abs(stored[tx] - score) > 1e-6
        ],
        state_mismatches=[c for c, blob in states.items() if bytes(blob) != reference_rows.get(c)],
        states=len(states),
    )


def assert_matches_reference(
    db_url: str,
    values: Iterable[bytes | None],
    artifact: Path,
    topic: str,
    labels: LabelEvents | None = None,
    entity_table: bool = False,
) -> None:
    result = compare_with_reference(db_url, values, artifact, topic, labels, entity_table)
    assert result.duplicates == 0
    assert not result.missing and not result.unexpected, (
        f"every valid record stored exactly once: {len(result.missing)} missing, {len(result.unexpected)} unexpected"
    )
    assert not result.score_mismatches, (
        f"{len(result.score_mismatches)} scores differ from the uninterrupted run"
    )
    assert result.states, "the consumer checkpointed customer state"
    assert not result.state_mismatches, f"{len(result.state_mismatches)} checkpointed customer states differ"
