"""The stream consumer against real Kafka and PostgreSQL: nothing lost, nothing duplicated, state exact.

The reference for "exact" is an uninterrupted, offline pass of the same records through the same
feature engine and model: every stored score must equal the score that pass computes, and every
checkpointed customer state must equal its state byte for byte.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudops.db import migrate
from fraudops_infra.stack import LocalStack
from tests.integration.streaming import (
    StreamSetup,
    assert_matches_reference,
    new_setup,
    produce,
    read_topic,
    simulated_records,
    stop,
    wait_for,
    wait_for_count,
    wait_until_caught_up,
)
from tests.poison import POISONS

pytestmark = pytest.mark.integration


@pytest.fixture()
def stream_setup(
    local_stack: LocalStack, scratch_database: str, trained_artifact: Path, tmp_path: Path
) -> Iterator[StreamSetup]:
    migrate.upgrade(scratch_database)
    setup = new_setup(local_stack.kafka.bootstrap, scratch_database, trained_artifact, tmp_path)
    yield setup
    assert not setup.leftovers(), "a process outlived its test"


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
        wait_for(
            lambda: "database unavailable; retrying the batch" in stream_setup.log("outage"),
            120,
            "the consumer to meet the outage",
            [consumer],
        )
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
        wait_for(
            lambda: "partition assigned" in stream_setup.log("b"),
            180,
            "the second consumer's partitions",
            [first, second],
        )
        produce(stream_setup.bootstrap, stream_setup.topic, records[25_000:])
        assert wait_for_count(stream_setup.db_url, len(records), 240, [first, second]) == len(records)
        wait_until_caught_up(stream_setup, 120, [first, second])
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
