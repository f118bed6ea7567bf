"""The entity-state component and the scorers' mirror: online entity features equal the offline replay.

The component takes every partition's transactions in whatever order they arrive (here: partitions
by customer, read in random chunks, one partition racing ahead of another) and the fraud labels as
they become known, closes epochs as its watermark passes them, restarts from its own snapshot along
the way, and publishes per-epoch deltas. A scorer mirrors the deltas and reads each transaction at
its own epoch's start: its features equal training's replay value for value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudops.features import layout as L
from fraudops.features.encode import EntityEvents, encode_frame, encode_records, stable_hash
from fraudops.features.engine import FeatureEngine, labels_from_history
from fraudops.features.entities import EntityTable
from fraudops.features.entity_kernel import ENTITY_FIRST
from fraudops.features.entity_mirror import EntityDelta, EntityMirror
from fraudops.features.spec import FEATURE_NAMES, FeatureConfig
from fraudops_simulator import SimulationConfig
from fraudops_stream.decode import decode_batch
from fraudops_stream.entity_state import EntityState
from tests.unit.histories import history_and_values

PARTITIONS = 3


@pytest.fixture(scope="module")
def history() -> tuple[pd.DataFrame, list[bytes]]:
    return history_and_values(SimulationConfig(transactions=10_000, customers=300, days=30, seed=5))


@pytest.fixture(scope="module")
def offline(history: tuple[pd.DataFrame, list[bytes]]) -> np.ndarray:
    return FeatureEngine(entity_table=True).replay(history[0])


def partition_of(frame: pd.DataFrame) -> np.ndarray:
    return (stable_hash(frame["customer_id"].to_numpy()) % PARTITIONS + PARTITIONS) % PARTITIONS


def run_component(frame: pd.DataFrame, seed: int, restarts: bool) -> list[EntityDelta]:
    """Feed the component partition by partition in random chunks; labels once the data passed their time."""
    rng = np.random.default_rng(seed)
    config = FeatureConfig()
    labels = labels_from_history(frame, config)
    labels = labels.take(np.argsort(labels.known_at, kind="stable"))
    partitions = partition_of(frame)
    rows_of = {p: np.flatnonzero(partitions == p) for p in range(PARTITIONS)}
    position = dict.fromkeys(range(PARTITIONS), 0)
    state = EntityState(config)
    delivered = 0
    deltas: list[EntityDelta] = []
    while any(position[p] < len(rows_of[p]) for p in range(PARTITIONS)):
        partition = int(rng.integers(PARTITIONS))
        rows = rows_of[partition]
        if position[partition] >= len(rows):
            continue
        end = min(position[partition] + int(rng.integers(1, 900)), len(rows))
        chunk = frame.iloc[rows[position[partition] : end]]
        state.take_transactions(partition, end, EntityEvents.of(encode_frame(chunk)))
        position[partition] = end
        idle = {p for p in range(PARTITIONS) if position[p] >= len(rows_of[p])}
        watermark = state.watermark(list(range(PARTITIONS)), idle)
        # labels reach the component by the time its slowest partition has passed them
        known = int(np.searchsorted(labels.known_at, watermark, side="left"))
        if known > delivered:
            state.take_labels(labels.take(slice(delivered, known)))
            delivered = known
        deltas += state.close(watermark)
        if restarts and rng.random() < 0.05:  # from its snapshot: table, open epoch's events, offsets
            state = EntityState(config, EntityTable.from_arrays(state.table.arrays()), state.offsets)
            for p in range(
                PARTITIONS
            ):  # what it knew of each partition's newest time is rebuilt by reading on
                if position[p] > 0:
                    state.newest[p] = float(frame["event_time"].iloc[rows_of[p][position[p] - 1]].timestamp())
    assert state.late_events == 0
    return deltas


def mirror_up_to(mirror: EntityMirror, deltas: list[EntityDelta], epoch: int) -> None:
    due = 0
    while due < len(deltas) and deltas[due].epoch <= epoch:
        due += 1
    mirror.apply(deltas[:due])  # as a consumer does: every delta its batch needs, in one step
    del deltas[:due]
    mirror.advance(epoch)


def stream_batch(
    engine: FeatureEngine, mirror: EntityMirror, deltas: list[EntityDelta], values: list[bytes]
) -> np.ndarray:
    """Features of one batch as the stream consumer computes them: the customer part from its engine,
    the entity part from the mirror, brought up to the batch's newest epoch and read in epoch order."""
    _, records, _ = decode_batch(values)
    batch = encode_records(records)
    features = engine.transform(batch)
    times = batch.txf[:, L.TF_TIME]
    mirror_up_to(mirror, deltas, int(FeatureConfig().read_epochs(times).max()))
    mirror.features(times, batch.risk_keys, FeatureConfig(), features)
    return features


def assert_equal(expected: np.ndarray, actual: np.ndarray) -> None:
    differences = ~((expected == actual) | (np.isnan(expected) & np.isnan(actual)))
    assert not differences.any(), (
        f"{int(differences.sum())} values differ, first in feature "
        f"{FEATURE_NAMES[int(np.argwhere(differences)[0][1])]!r}"
    )


@pytest.mark.parametrize("restarts", [False, True], ids=["steady", "restarting"])
def test_a_scorer_reading_the_published_table_equals_the_replay_value_for_value(
    history: tuple[pd.DataFrame, list[bytes]], offline: np.ndarray, restarts: bool
) -> None:
    frame, values = history
    deltas = run_component(frame, seed=3, restarts=restarts)
    config = FeatureConfig()
    labels = labels_from_history(frame, config)
    labels = labels.take(np.argsort(labels.known_at, kind="stable"))
    times = frame["event_time"].dt.as_unit("ns").astype("int64").to_numpy() / 1e9
    engine = FeatureEngine()
    mirror = EntityMirror(None, 0, keep_epochs=None)
    rng = np.random.default_rng(8)
    parts, delivered, start = [], 0, 0
    while start < len(values):
        end = min(start + (1 if rng.random() < 0.2 else int(rng.integers(2, 700))), len(values))
        known = int(np.searchsorted(labels.known_at, times[end - 1], side="left"))
        if known > delivered:
            engine.add_fraud_labels(labels.take(slice(delivered, known)))
            delivered = known
        parts.append(stream_batch(engine, mirror, deltas, values[start:end]))
        mirror.forget_before(int(config.read_epochs(times[end - 1 : end])[0]))
        start = end
    streamed = np.concatenate(parts)
    assert np.isfinite(streamed[:, ENTITY_FIRST:]).any(axis=0).sum() >= 20, "entity features must be in use"
    assert mirror.stale_reads == 0
    assert_equal(offline, streamed)


@pytest.mark.parametrize("apart_days", [0.03, 3.0], ids=["40-minutes", "3-days"])
def test_a_consumer_whose_partitions_run_apart_still_reads_each_transaction_at_its_own_epoch(
    history: tuple[pd.DataFrame, list[bytes]], offline: np.ndarray, apart_days: float
) -> None:
    # One batch holds a chunk of the leading partition and then chunks of partitions lagging behind it
    # (as Kafka hands a consumer whole fetches of each partition); the next batch goes back again. The
    # mirror moves back and forth through its history; it forgets only what no partition can still read.
    frame, values = history
    deltas = run_component(frame, seed=4, restarts=False)
    config = FeatureConfig()
    times = frame["event_time"].dt.as_unit("ns").astype("int64").to_numpy() / 1e9
    partitions = partition_of(frame)
    mirror = EntityMirror(None, 0, keep_epochs=None)
    engine = FeatureEngine()
    streamed = np.full(offline.shape, -1.0, dtype=np.float32)
    position = dict.fromkeys(range(PARTITIONS), 0)
    newest_epoch: dict[int, int] = {}
    rows_of = {p: np.flatnonzero(partitions == p) for p in range(PARTITIONS)}
    lead = 0
    while any(position[p] < len(rows_of[p]) for p in range(PARTITIONS)):
        # partition `lead` runs `apart_days` ahead of the others, then the next one takes the lead
        chunks = []
        for partition in [lead, *(p for p in range(PARTITIONS) if p != lead)]:
            rows = rows_of[partition]
            if position[partition] >= len(rows):
                continue
            lead_rows = rows_of[lead]
            horizon = times[lead_rows[min(position[lead], len(lead_rows) - 1)]] + (
                apart_days * 86400 if partition == lead else 0
            )
            end = position[partition] + int(
                np.searchsorted(times[rows[position[partition] :]], horizon, "right")
            )
            end = max(end, position[partition] + 1)
            chunks.append(rows[position[partition] : end])
            position[partition] = end
            newest_epoch[partition] = int(config.read_epochs(times[rows[end - 1 : end]])[0])
        batch = np.concatenate(chunks)
        streamed[batch] = stream_batch(engine, mirror, deltas, [values[i] for i in batch])
        mirror.forget_before(min(newest_epoch.values()))
        lead = (lead + 1) % PARTITIONS
    assert mirror.stale_reads == 0
    assert_equal(offline[:, ENTITY_FIRST:], streamed[:, ENTITY_FIRST:])


def test_a_mirror_reads_its_table_at_any_epoch_its_history_reaches(
    history: tuple[pd.DataFrame, list[bytes]],
) -> None:
    frame, _ = history
    deltas = run_component(frame, seed=6, restarts=False)
    mirror = EntityMirror(None, 0, keep_epochs=None)
    middle = deltas[len(deltas) // 2].epoch
    mirror_up_to(mirror, list(deltas), middle)
    n = len(mirror.table)
    at_middle = (mirror.table.floats[:n].copy(), mirror.table.ints[:n].copy())
    mirror_up_to(mirror, [d for d in deltas if d.epoch > middle], deltas[-1].epoch)
    assert len(mirror.table) > n and not np.array_equal(mirror.table.floats[:n], at_middle[0])
    every = np.arange(len(mirror.table))
    floats, ints = mirror.read_rows(every, np.full(len(every), middle))
    assert np.array_equal(floats[:n], at_middle[0])
    assert np.array_equal(ints[:n], at_middle[1])
    assert not floats[n:].any() and not ints[n:].any(), "entities first seen later are empty at the middle"
    newest_f, _ = mirror.read_rows(every, np.full(len(every), deltas[-1].epoch))
    assert np.array_equal(newest_f, mirror.table.floats[: len(every)])
    mirror.forget_before(middle)
    assert mirror.oldest_readable_epoch == middle, "it cannot read before what it forgot"
    floats, _ = mirror.read_rows(every, np.zeros(len(every), dtype=np.int64))
    assert np.array_equal(floats[:n], at_middle[0]), "older reads come from the oldest table it reaches"


def test_deltas_applied_many_at_once_leave_the_mirror_as_applied_one_by_one(
    history: tuple[pd.DataFrame, list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fraudops.features import entity_mirror

    frame, _ = history
    deltas = run_component(frame, seed=7, restarts=False)
    one_by_one = EntityMirror(None, 0, keep_epochs=None)
    for delta in deltas:
        one_by_one.apply(delta)
    monkeypatch.setattr(entity_mirror, "APPLY_STEP_ROWS", 500)  # several steps, each of many deltas
    at_once = EntityMirror(None, 0, keep_epochs=None)
    at_once.apply(deltas)
    n = len(one_by_one.table)
    assert len(at_once.table) == n and len(at_once.history) == len(one_by_one.history)
    rows = at_once.table.rows_of_salted(one_by_one.table.keys[:n], create=False)
    for epoch in [deltas[0].epoch - 1, *(d.epoch for d in deltas[:: len(deltas) // 7]), deltas[-1].epoch]:
        expected = one_by_one.read_rows(np.arange(n), np.full(n, epoch))
        actual = at_once.read_rows(rows, np.full(n, epoch))
        assert np.array_equal(expected[0], actual[0]) and np.array_equal(expected[1], actual[1])
    assert at_once.table.floats[rows].any(), "the rows must hold something to compare"


def test_a_restored_table_that_numbers_its_rows_otherwise_takes_the_open_epochs_events_by_key(
    history: tuple[pd.DataFrame, list[bytes]],
) -> None:
    # The component resumes from a snapshot plus the published deltas: rows created after the snapshot get
    # other numbers than the component gave them, so the queued events are restored by their entities' keys.
    frame, _ = history
    config = FeatureConfig()
    times = frame["event_time"].dt.as_unit("ns").astype("int64").to_numpy() / 1e9
    half = len(frame) // 2
    state = EntityState(config)
    state.take_transactions(0, half, EntityEvents.of(encode_frame(frame.iloc[:half])))
    state.close(times[half - 1] - 3 * config.entity_epoch_s)  # the last minutes stay queued
    table = state.table
    assert table.queued > 0
    n = len(table)
    renumbered = EntityTable.from_rows(
        table.keys[:n][::-1].copy(), table.floats[:n][::-1], table.ints[:n][::-1]
    )
    renumbered.requeue(
        table.queue_f[: table.queued], table.queue_i[: table.queued], table.queued_entity_keys()
    )
    renumbered.epoch = table.epoch
    closing = int(times[half - 1] // config.entity_epoch_s) + 1
    state.close(closing * config.entity_epoch_s + 1)
    EntityState(config, renumbered).close(closing * config.entity_epoch_s + 1)
    rows = renumbered.rows_of_salted(table.keys[:n], create=False)
    assert np.array_equal(renumbered.floats[rows], table.floats[:n])
    assert np.array_equal(renumbered.ints[rows], table.ints[:n])


def test_a_mirror_within_a_small_history_budget_reads_exactly_from_its_oldest_readable_epoch_on(
    history: tuple[pd.DataFrame, list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the history's arrays fill, drop what the budget forgot and grow again many times over
    from fraudops.features import entity_mirror

    frame, _ = history
    deltas = run_component(frame, seed=9, restarts=False)
    monkeypatch.setattr(entity_mirror, "APPLY_STEP_ROWS", 100)
    reference = EntityMirror(None, 0, keep_epochs=None, max_history_rows=10**9)
    reference.apply(deltas)
    small = EntityMirror(None, 0, keep_epochs=None, max_history_rows=400)
    checked = 0
    for start in range(0, len(deltas), 37):
        small.apply(deltas[start : start + 37])
        assert len(small.history) <= 400 + 100
        n = len(small.table)
        rows = reference.table.rows_of_salted(small.table.keys[:n], create=False)
        for epoch in (small.oldest_readable_epoch, (small.oldest_readable_epoch + small.newest_epoch) // 2):
            expected = reference.read_rows(rows, np.full(n, epoch))
            actual = small.read_rows(np.arange(n), np.full(n, epoch))
            assert np.array_equal(expected[0], actual[0]) and np.array_equal(expected[1], actual[1])
            checked += 1
    assert small.oldest_readable_epoch > deltas[len(deltas) // 2].epoch, "the budget must have forgotten"
    assert len(small.history.epochs) == 1024, (
        "forgotten entries make room: the first arrays are never outgrown"
    )
    assert checked > 100


def test_a_snapshot_waits_for_its_epochs_and_for_deltas_as_large_as_the_table() -> None:
    from fraudops_stream.entity_component import EntityComponentOptions, snapshot_due

    options = EntityComponentOptions(snapshot_every_epochs=240, snapshot_rows_share=1.0)
    assert not snapshot_due(239, 10**6, 1000, options), "never before its epochs"
    assert not snapshot_due(5000, 999, 1000, options), "a sparse history: fewer changed rows than the table"
    assert snapshot_due(240, 1000, 1000, options)
    every_epochs = EntityComponentOptions(snapshot_every_epochs=240, snapshot_rows_share=0.0)
    assert snapshot_due(240, 0, 1000, every_epochs)
