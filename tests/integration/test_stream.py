"""The stream consumer against real Kafka and PostgreSQL: nothing lost, nothing duplicated, state exact.

The reference for "exact" is an uninterrupted, offline pass of the same records through the same
feature engine and model: every stored score must equal the score that pass computes, and every
checkpointed customer state must equal its state byte for byte.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import psycopg
import pytest

from fraudops import statestore
from fraudops_infra.stack import LocalStack
from fraudops_stream.consumer import ConsumerOptions, StreamConsumer
from fraudops_stream.writer import Batch
from tests.integration.streaming import (
    StreamSetup,
    assert_matches_reference,
    finish_after_joining,
    produce,
    read_topic,
    simulated_records,
    stop,
    stream_test,
    wait_for_count,
    wait_until_caught_up,
)
from tests.poison import POISONS
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture()
def stream_setup(
    local_stack: LocalStack, scratch_database: str, trained_artifact: Path, tmp_path: Path
) -> Iterator[StreamSetup]:
    with stream_test(local_stack, scratch_database, trained_artifact, tmp_path) as setup:
        yield setup


def values(records: list[tuple[str, bytes]]) -> list[bytes]:
    return [value for _, value in records]


def test_malformed_records_go_to_the_dlq_with_their_reason_and_valid_ones_are_stored(
    stream_setup: StreamSetup, tmp_path: Path
) -> None:
    good = simulated_records(2_000, seed=5)
    mixed: list[tuple[str | None, bytes | None]] = []
    for i, record in enumerate(good):
        mixed.append(record)
        if i % 60 == 0 and i // 60 < len(POISONS):
            mixed.append(("c-bad", POISONS[i // 60].make(f"bad-{i}", "c-bad")))
    produce(stream_setup.bootstrap, stream_setup.topic, mixed)
    consumer = stream_setup.consumer("dlq")
    try:
        assert wait_for_count(stream_setup.db_url, len(good), 240, [consumer]) == len(good)
    finally:
        stop(consumer)
    dead = read_topic(stream_setup.bootstrap, stream_setup.dlq, len(POISONS))
    headers = [{k: v.decode() for k, v in m.headers()} for m in dead]
    assert len({h["dlq.offset"] for h in headers}) == len(POISONS)
    assert sorted(h["dlq.field"] for h in headers) == sorted(p.field for p in POISONS), "each names its field"
    assert all(h["dlq.topic"] == stream_setup.topic and h["dlq.offset"].isdigit() for h in headers)
    assert any("fraction of a cent" in h["dlq.reason"] for h in headers)


def test_kill_9_mid_stream_loses_nothing_duplicates_nothing_and_restores_exact_state(
    stream_setup: StreamSetup, trained_artifact: Path, tmp_path: Path
) -> None:
    records = simulated_records(100_000, seed=9)
    produce(stream_setup.bootstrap, stream_setup.topic, records)

    first = stream_setup.consumer("first")
    reached = wait_for_count(stream_setup.db_url, 40_000, 300, [first])
    first.send_signal(signal.SIGKILL)  # no warning, no checkpoint, no commit of the batch in hand
    first.wait(timeout=30)
    assert 40_000 <= reached < len(records), "the kill happened mid-stream"

    second = stream_setup.consumer("second")
    try:
        assert wait_for_count(stream_setup.db_url, len(records), 300, [second]) == len(records)
        wait_until_caught_up(stream_setup, 120, [second])
    finally:
        stop(second)  # SIGTERM: the clean path checkpoints every partition
    assert_matches_reference(stream_setup.db_url, values(records), trained_artifact, stream_setup.topic)


def test_a_10_second_postgres_outage_loses_nothing_and_the_consumer_catches_up(
    stream_setup: StreamSetup, local_stack: LocalStack, trained_artifact: Path, tmp_path: Path
) -> None:
    records = simulated_records(30_000, seed=13)
    consumer = stream_setup.consumer("outage")
    try:
        produce(stream_setup.bootstrap, stream_setup.topic, records[:10_000])
        assert wait_for_count(stream_setup.db_url, 10_000, 120, [consumer]) == 10_000
        local_stack.postgres.down()
        produce(stream_setup.bootstrap, stream_setup.topic, records[10_000:])  # arrives during the outage
        stream_setup.wait_for_log("outage", "database unavailable; retrying the batch", 120, alive=[consumer])
        assert consumer.poll() is None, "the consumer waits out the outage instead of crashing"
        local_stack.postgres.up()
        assert wait_for_count(stream_setup.db_url, len(records), 180, [consumer]) == len(records)
    finally:
        stop(consumer)
    assert_matches_reference(stream_setup.db_url, values(records), trained_artifact, stream_setup.topic)


def test_two_consumers_share_the_partitions_and_a_rebalance_moves_state_exactly(
    stream_setup: StreamSetup, trained_artifact: Path, tmp_path: Path
) -> None:
    records = simulated_records(60_000, seed=17)
    produce(stream_setup.bootstrap, stream_setup.topic, records[:25_000])
    first = stream_setup.consumer("a")
    second = None
    try:
        assert wait_for_count(stream_setup.db_url, 25_000, 180, [first]) == 25_000
        second = stream_setup.consumer("b")  # joins: partitions (and their state) move
        finish_after_joining(stream_setup, "b", [first, second], records[25_000:], len(records))
    finally:
        if second is not None:
            stop(second)
        stop(first)
    first_log = stream_setup.log("a")
    second_log = stream_setup.log("b")
    assert "partition revoked" in first_log and "state checkpointed" in first_log, (
        "the rebalance took partitions from the first"
    )
    assert "partition assigned" in second_log, "and gave them to the second"
    assert_matches_reference(stream_setup.db_url, values(records), trained_artifact, stream_setup.topic)


def test_a_rebalance_while_a_batch_is_being_written_completes_and_loses_nothing(
    stream_setup: StreamSetup, trained_artifact: Path
) -> None:
    # Found by the chaos suite: the batch writer committed its batch's offsets through the Kafka consumer
    # while the consumer's thread, in the rebalance callback, waited for that very batch to be written;
    # neither moved, and the joining consumer got no partition until max.poll.interval (600 s).
    # The first consumer runs in this process so that one batch can be held in its writer until the
    # rebalance callback waits for it; the joining one is a real `fraudops stream consume` process.
    records = simulated_records(12_000, seed=23)
    settings = stream_setup.settings(trained_artifact)
    # No checkpoint round while the batch is held: a round waits for the batch, and the loop would stop
    # polling before the rebalance could reach it.
    first = StreamConsumer(settings, ConsumerOptions(batch_size=1000, checkpoint_interval_s=3600))
    hold_next, holding, revoking = threading.Event(), threading.Event(), threading.Event()
    write, on_revoke = first.writer.write, first._on_revoke

    def write_once_the_rebalance_waits(batch: Batch) -> None:
        if hold_next.is_set():
            hold_next.clear()
            holding.set()
            revoking.wait(timeout=300)
        write(batch)

    def revoke(consumer: object, partitions: list) -> None:
        revoking.set()
        on_revoke(consumer, partitions)  # type: ignore[arg-type]

    first.writer.write = write_once_the_rebalance_waits  # type: ignore[method-assign]
    first._on_revoke = revoke  # type: ignore[method-assign]
    running = threading.Thread(target=first.run, name="first-consumer", daemon=True)
    running.start()
    second = None
    try:
        produce(stream_setup.bootstrap, stream_setup.topic, records[:6_000])
        assert wait_for_count(stream_setup.db_url, 6_000, 180, []) == 6_000
        hold_next.set()
        produce(stream_setup.bootstrap, stream_setup.topic, records[6_000:6_001])  # one record: one batch
        wait_until(holding.is_set, 60, "the first consumer's writer to hold a batch", interval_s=0.5)
        second = stream_setup.consumer("b")  # joins: the first consumer's rebalance callback waits for it
        wait_until(
            revoking.is_set, 120, "the rebalance to reach the first consumer", interval_s=0.5, alive=[second]
        )
        finish_after_joining(stream_setup, "b", [second], records[6_001:], len(records))
        assert running.is_alive(), "the first consumer kept running"
    finally:
        if second is not None:
            stop(second)
        first.stop()
        running.join(timeout=120)
    assert not running.is_alive(), "the first consumer stopped when asked"
    assert_matches_reference(stream_setup.db_url, values(records), trained_artifact, stream_setup.topic)


def test_a_restart_and_a_rebalance_after_fraud_labels_count_each_label_once(
    stream_setup: StreamSetup, trained_artifact: Path, tmp_path: Path
) -> None:
    # Labels confirmed between two phases of the history, known at an instant between them: every
    # consumer applies them at its first record after it, however the partitions lie, so the stream's
    # result is exact. Then a clean restart (a fresh consumer restores rows that hold the labels and
    # reads every label) and a rebalance (a second fresh consumer takes partitions over).
    records = simulated_records(40_000, seed=19)
    times = [orjson.loads(value)["event_time"] for _, value in records]
    assert times == sorted(times)
    first_phase = 10_000
    while times[first_phase] == times[first_phase - 1]:
        first_phase += 1
    before, after = (datetime.fromisoformat(times[i]).timestamp() for i in (first_phase - 1, first_phase))
    known_at = datetime.fromtimestamp(round((before + after) / 2, 6), tz=UTC)
    rng = np.random.default_rng(19)
    labelled = [
        orjson.loads(records[i][1])["transaction_id"] for i in rng.choice(first_phase, 400, replace=False)
    ]

    first = stream_setup.consumer("first")
    produce(stream_setup.bootstrap, stream_setup.topic, records[:first_phase])
    assert wait_for_count(stream_setup.db_url, first_phase, 180, [first]) == first_phase
    with psycopg.connect(stream_setup.db_url) as conn:
        conn.cursor().executemany(
            "INSERT INTO feedback_labels (transaction_id, is_fraud, label_known_at, source) VALUES (%s, true, %s, 'test')",
            [(transaction_id, known_at) for transaction_id in labelled],
        )
    stream_setup.wait_for_log("first", '"labels": 400', 60, alive=[first])
    produce(stream_setup.bootstrap, stream_setup.topic, records[first_phase:20_000])
    assert wait_for_count(stream_setup.db_url, 20_000, 180, [first]) == 20_000
    wait_until_caught_up(stream_setup, 120, [first])
    assert stop(first) == 0  # checkpoints every partition: its customers' rows hold the labels

    # Waiting before it starts: its first batch comes with its first call, and must already see the labels.
    produce(stream_setup.bootstrap, stream_setup.topic, records[20_000:30_000])
    second = stream_setup.consumer("second")
    third = None
    try:
        assert wait_for_count(stream_setup.db_url, 30_000, 180, [second]) == 30_000
        third = stream_setup.consumer("third")  # joins: partitions (and their state) move to it
        finish_after_joining(stream_setup, "third", [second, third], records[30_000:], len(records))
    finally:
        if third is not None:
            stop(third)
        stop(second)
    assert "state checkpointed" in stream_setup.log("second"), "the rebalance moved state from the second"
    with psycopg.connect(stream_setup.db_url) as conn:
        labels, _ = statestore.fetch_fraud_labels(conn, None)
    assert len(labels) == 400
    assert_matches_reference(
        stream_setup.db_url, values(records), trained_artifact, stream_setup.topic, labels
    )
