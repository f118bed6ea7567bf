"""The stream consumer against real Kafka and PostgreSQL: nothing lost, nothing duplicated, state exact.

The reference for "exact" is an uninterrupted, offline pass of the same records through the same
feature engine and model: every stored score must equal the score that pass computes, and every
checkpointed customer state must equal its state byte for byte.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from fraudops.artifact import load_artifact
from fraudops.db import migrate
from fraudops.features.encode import encode_records
from fraudops.features.engine import FeatureEngine
from fraudops.scoring import Scorer
from fraudops_infra.stack import LocalStack
from fraudops_stream.decode import decode_batch
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration


@dataclass
class StreamSetup:
    env: dict[str, str]
    topic: str
    dlq: str
    db_url: str
    bootstrap: str


@pytest.fixture()
def stream_setup(local_stack: LocalStack, scratch_database: str, trained_artifact: Path) -> StreamSetup:
    suffix = uuid.uuid4().hex[:8]
    topic, alerts, dlq = f"tx-{suffix}", f"alerts-{suffix}", f"dlq-{suffix}"
    admin = AdminClient({"bootstrap.servers": local_stack.kafka.bootstrap})
    for future in admin.create_topics(
        [NewTopic(topic, 6, 1), NewTopic(alerts, 1, 1), NewTopic(dlq, 1, 1)]
    ).values():
        future.result(timeout=30)
    migrate.upgrade(scratch_database)
    env = {
        **os.environ,
        "DB_URL": scratch_database,
        "KAFKA_BOOTSTRAP_SERVERS": local_stack.kafka.bootstrap,
        "TRANSACTIONS_TOPIC": topic,
        "ALERTS_TOPIC": alerts,
        "DLQ_TOPIC": dlq,
        "CONSUMER_GROUP": f"g-{suffix}",
        "MODEL_PATH": str(trained_artifact),
        "BATCH_SIZE": "1000",
        "LOG_FORMAT": "json",
    }
    return StreamSetup(env, topic, dlq, scratch_database, local_stack.kafka.bootstrap)


def simulated_records(transactions: int, seed: int) -> list[tuple[str, bytes]]:
    """(customer key, JSON value) in event-time order, from the real simulator."""
    from fraudops_simulator import SimulationConfig, simulate
    from fraudops_simulator.kafka import encode_records as encode_json

    records = []
    for table in simulate(
        SimulationConfig(transactions=transactions, customers=transactions // 50, days=20, seed=seed)
    ):
        keys = table.column("customer_id").to_pylist()
        records.extend(zip(keys, encode_json(table), strict=True))
    return records


def produce(bootstrap: str, topic: str, records: list[tuple[str | None, bytes]]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "compression.type": "lz4",
            "enable.idempotence": True,
        }
    )
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0


def start_consumer(
    setup: StreamSetup, name: str, tmp_path: Path, checkpoint_s: float = 2.0
) -> subprocess.Popen:
    log = open(tmp_path / f"{name}.log", "ab")  # noqa: SIM115 - the process owns it until it ends
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fraudops_cli.main",
            "stream",
            "consume",
            "--metrics-port",
            "0",
            "--checkpoint-interval",
            str(checkpoint_s),
        ],
        env=setup.env,
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stored_count(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        return int(conn.execute("SELECT count(*) FROM transactions").fetchone()[0])


def wait_for_count(db_url: str, expected: int, timeout_s: float, procs: list[subprocess.Popen]) -> int:
    deadline = time.monotonic() + timeout_s
    count = 0
    while time.monotonic() < deadline:
        count = stored_count(db_url)
        if count >= expected:
            return count
        for proc in procs:
            assert proc.poll() is None, f"consumer exited early with {proc.returncode}"
        time.sleep(0.5)
    return count


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def reference_run(records: list[tuple[str, bytes]], artifact: Path) -> tuple[dict[str, float], FeatureEngine]:
    """The uninterrupted offline pass: scores per transaction id and the final engine."""
    engine = FeatureEngine()
    scorer = Scorer(load_artifact(str(artifact)))
    scores: dict[str, float] = {}
    for start in range(0, len(records), 5000):
        _, decoded, _ = decode_batch([value for _, value in records[start : start + 5000]])
        features = engine.transform(encode_records(decoded))
        for record, score in zip(decoded, scorer.score(features), strict=True):
            scores[record["transaction_id"]] = float(score)
    return scores, engine


def assert_matches_reference(
    db_url: str, records: list[tuple[str, bytes]], artifact: Path, topic: str
) -> None:
    expected_scores, engine = reference_run(records, artifact)
    with psycopg.connect(db_url) as conn:
        stored = dict(conn.execute("SELECT transaction_id, score FROM decisions WHERE NOT shadow").fetchall())
        duplicates = conn.execute(
            "SELECT count(*) - count(DISTINCT transaction_id) FROM transactions"
        ).fetchone()[0]
        states = dict(
            conn.execute(
                "SELECT customer_id, state FROM customer_feature_state WHERE topic = %s", (topic,)
            ).fetchall()
        )
    assert duplicates == 0
    assert set(stored) == set(expected_scores), "every produced transaction is stored exactly once"
    mismatched = [tx for tx, score in expected_scores.items() if abs(stored[tx] - score) > 1e-6]
    assert not mismatched, (
        f"{len(mismatched)} scores differ from the uninterrupted run, e.g. {mismatched[:3]}"
    )
    assert states, "the consumer checkpointed customer state"
    reference_rows = dict(engine.export_customers(states))
    differing = [c for c, blob in states.items() if bytes(blob) != reference_rows[c]]
    assert not differing, f"{len(differing)} restored customer states differ, e.g. {differing[:3]}"


def test_malformed_records_go_to_the_dlq_with_their_reason_and_valid_ones_are_stored(
    stream_setup: StreamSetup, tmp_path: Path
) -> None:
    good = simulated_records(2_000, seed=5)
    bad: list[tuple[str | None, bytes]] = [
        ("c-bad", b"{this is not json"),
        (
            "c-bad",
            orjson.dumps(
                {
                    "transaction_id": "neg",
                    "event_time": "2026-08-01T10:00:00Z",
                    "customer_id": "c-bad",
                    "amount": -12.0,
                }
            ),
        ),
        (
            "c-bad",
            orjson.dumps(
                {"transaction_id": "nocustomer", "event_time": "2026-08-01T10:00:00Z", "amount": 12.0}
            ),
        ),
        (
            "c-bad",
            orjson.dumps(
                {
                    "transaction_id": "wrongtype",
                    "event_time": "2026-08-01T10:00:00Z",
                    "customer_id": "c-bad",
                    "amount": "twelve",
                }
            ),
        ),
        (
            "c-bad",
            orjson.dumps(
                {
                    "transaction_id": "badchannel",
                    "event_time": "2026-08-01T10:00:00Z",
                    "customer_id": "c-bad",
                    "amount": 5,
                    "channel": "TELEPATHY",
                }
            ),
        ),
    ]
    mixed: list[tuple[str | None, bytes]] = []
    for i, record in enumerate(good):
        mixed.append(record)
        if i % 400 == 0 and bad:
            mixed.append(bad.pop())
    produce(stream_setup.bootstrap, stream_setup.topic, mixed)
    consumer = start_consumer(stream_setup, "dlq", tmp_path)
    try:
        assert wait_for_count(stream_setup.db_url, len(good), 120, [consumer]) == len(good)
    finally:
        stop(consumer)
    dlq = Consumer(
        {
            "bootstrap.servers": stream_setup.bootstrap,
            "group.id": f"read-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
        }
    )
    dlq.subscribe([stream_setup.dlq])
    reasons = {}
    deadline = time.monotonic() + 30
    while len(reasons) < 5 and time.monotonic() < deadline:
        for message in dlq.consume(num_messages=10, timeout=1.0):
            headers = {k: v.decode() for k, v in message.headers()}
            reasons[message.value()] = headers
    dlq.close()
    assert len(reasons) == 5
    by_reason = {headers["dlq.field"]: headers for headers in reasons.values()}
    assert "not valid JSON" in by_reason["record"]["dlq.reason"]
    assert (
        "greater than 0" in by_reason["amount"]["dlq.reason"]
        or "valid number" in by_reason["amount"]["dlq.reason"]
    )
    assert "customer_id" in by_reason
    assert "channel" in by_reason
    assert all(h["dlq.topic"] == stream_setup.topic and h["dlq.offset"].isdigit() for h in reasons.values())


def test_kill_9_mid_stream_loses_nothing_duplicates_nothing_and_restores_exact_state(
    stream_setup: StreamSetup, trained_artifact: Path, tmp_path: Path
) -> None:
    records = simulated_records(100_000, seed=9)
    produce(stream_setup.bootstrap, stream_setup.topic, records)

    first = start_consumer(stream_setup, "first", tmp_path)
    reached = wait_for_count(stream_setup.db_url, 40_000, 300, [first])
    first.send_signal(signal.SIGKILL)  # no warning, no checkpoint, no commit of the batch in hand
    first.wait(timeout=30)
    assert 40_000 <= reached < len(records), "the kill happened mid-stream"

    second = start_consumer(stream_setup, "second", tmp_path)
    try:
        assert wait_for_count(stream_setup.db_url, len(records), 300, [second]) == len(records)
        time.sleep(2)  # let it reach the end and idle
    finally:
        stop(second)  # SIGTERM: the clean path checkpoints every partition
    assert_matches_reference(stream_setup.db_url, records, trained_artifact, stream_setup.topic)


def test_a_10_second_postgres_outage_loses_nothing_and_the_consumer_catches_up(
    stream_setup: StreamSetup, local_stack: LocalStack, trained_artifact: Path, tmp_path: Path
) -> None:
    records = simulated_records(30_000, seed=13)
    consumer = start_consumer(stream_setup, "outage", tmp_path)
    try:
        produce(stream_setup.bootstrap, stream_setup.topic, records[:10_000])
        assert wait_for_count(stream_setup.db_url, 10_000, 120, [consumer]) == 10_000
        local_stack.postgres.down()
        produce(stream_setup.bootstrap, stream_setup.topic, records[10_000:])  # arrives during the outage
        time.sleep(10)
        assert consumer.poll() is None, "the consumer waits out the outage instead of crashing"
        local_stack.postgres.up()
        assert wait_for_count(stream_setup.db_url, len(records), 180, [consumer]) == len(records)
    finally:
        stop(consumer)
    assert_matches_reference(stream_setup.db_url, records, trained_artifact, stream_setup.topic)


def test_two_consumers_share_the_partitions_and_a_rebalance_moves_state_exactly(
    stream_setup: StreamSetup, trained_artifact: Path, tmp_path: Path
) -> None:
    records = simulated_records(60_000, seed=17)
    produce(stream_setup.bootstrap, stream_setup.topic, records[:25_000])
    first = start_consumer(stream_setup, "a", tmp_path)
    second: subprocess.Popen | None = None
    try:
        assert wait_for_count(stream_setup.db_url, 25_000, 180, [first]) == 25_000
        second = start_consumer(stream_setup, "b", tmp_path)  # joins: partitions (and their state) move
        deadline = time.monotonic() + 180
        while "partition assigned" not in (tmp_path / "b.log").read_text():
            assert time.monotonic() < deadline, "the second consumer never got a partition"
            assert second.poll() is None, f"the second consumer exited with {second.returncode}"
            time.sleep(0.5)
        produce(stream_setup.bootstrap, stream_setup.topic, records[25_000:])
        assert wait_for_count(stream_setup.db_url, len(records), 240, [first, second]) == len(records)
        time.sleep(2)
    finally:
        if second is not None:
            stop(second)
        stop(first)
    first_log = (tmp_path / "a.log").read_text()
    second_log = (tmp_path / "b.log").read_text()
    assert "partition revoked; state checkpointed" in first_log, (
        "the rebalance took partitions from the first"
    )
    assert "partition assigned" in second_log, "and gave them to the second"
    assert_matches_reference(stream_setup.db_url, records, trained_artifact, stream_setup.topic)


@pytest.fixture(autouse=True)
def _no_leftover_consumers() -> Iterator[None]:
    yield
    leftover = subprocess.run(
        ["pgrep", "-f", "fraudops_cli.main stream consume"], capture_output=True, text=True
    )
    assert leftover.stdout.strip() == "", "a consumer process outlived its test"
