"""Checkpoints: only changed customers are written, a restore brings back all, and a checkpoint never
holds the effects of records that are not written (stored, their alerts and dead letters delivered)."""

from __future__ import annotations

import pandas as pd
import pytest

from fraudops.features.encode import encode_frame
from fraudops.features.engine import FeatureEngine
from fraudops.schema import TRANSACTION_FIELDS
from fraudops_simulator import SimulationConfig, simulate
from fraudops_stream.checkpointing import PERIODIC_REST, CheckpointScheduler, due
from fraudops_stream.state import MemoryCheckpoints, PartitionedState


def history() -> pd.DataFrame:
    frame = pd.concat(
        [t.to_pandas() for t in simulate(SimulationConfig(transactions=3000, customers=300, seed=9))]
    )
    return frame[[c for c in frame.columns if c in TRANSACTION_FIELDS]].sort_values(
        "event_time", kind="stable"
    )


def featured(state: PartitionedState, part: pd.DataFrame, position: int) -> None:
    """The consumer's thread: a batch's records are in the state (not written yet)."""
    state.engine.transform(encode_frame(part))
    state.touch(0, part["customer_id"].tolist())
    state.advanced(0, position)


def advance(state: PartitionedState, part: pd.DataFrame, position: int) -> None:
    """A batch featured and written."""
    featured(state, part, position)
    state.written({0: position})


def test_a_checkpoint_writes_the_changed_customers_and_a_restore_brings_back_all() -> None:
    frame = history()
    first, second = frame.iloc[:2500], frame.iloc[2500:]
    checkpoints = MemoryCheckpoints()
    state = PartitionedState(FeatureEngine(), checkpoints)

    advance(state, first, 2500)
    written_first = state.checkpoint(0)
    advance(state, second, 3000)
    written_second = state.checkpoint(0)
    restored = PartitionedState(FeatureEngine(), checkpoints)
    resume_at = restored.restore(0)

    everyone = sorted(frame["customer_id"].unique())
    assert written_first == first["customer_id"].nunique()
    assert written_second is not None and written_second == second["customer_id"].nunique() < len(everyone)
    assert resume_at == 3000
    assert restored.engine.export_customers(everyone) == state.engine.export_customers(everyone)


def test_a_failed_save_leaves_its_customers_to_the_next_checkpoint() -> None:
    class Failing(MemoryCheckpoints):
        fail = True

        def save(
            self, partition: int, next_offset: int, customers: list[tuple[str, bytes]], rest: float = 0.0
        ) -> None:
            if self.fail:
                raise OSError("database away")
            super().save(partition, next_offset, customers, rest)

    frame = history()
    checkpoints = Failing()
    state = PartitionedState(FeatureEngine(), checkpoints)
    advance(state, frame.iloc[:1000], 1000)
    with pytest.raises(OSError):
        state.checkpoint(0)
    checkpoints.fail = False
    advance(state, frame.iloc[1000:1100], 1100)

    written = state.checkpoint(0)

    assert written == frame.iloc[:1100]["customer_id"].nunique()


def test_a_partition_whose_batch_is_not_written_is_not_checkpointed_and_its_last_checkpoint_stays() -> None:
    # The crash between "features updated" and "offsets committed": the checkpoint taken at shutdown
    # must not carry the unwritten batch, or a restart would skip it (finding 5 of issue 10).
    frame = history()
    checkpoints = MemoryCheckpoints()
    state = PartitionedState(FeatureEngine(), checkpoints)
    advance(state, frame.iloc[:1000], 1000)
    assert state.checkpoint(0) is not None
    featured(state, frame.iloc[1000:2000], 2000)  # then the write fails (an outage, a stop)

    assert state.checkpoint(0) is None
    restored = PartitionedState(FeatureEngine(), checkpoints)
    assert restored.restore(0) == 1000
    offline = FeatureEngine()
    offline.transform(encode_frame(frame.iloc[:1000]))
    customers = sorted(frame.iloc[:1000]["customer_id"].unique())
    assert restored.engine.export_customers(customers) == offline.export_customers(customers), (
        "the checkpoint holds exactly the records before its offset, value for value"
    )


def test_the_scheduler_checkpoints_partitions_at_rest_one_at_a_time_and_skips_one_ahead() -> None:
    frame = history()
    checkpoints = MemoryCheckpoints()
    state = PartitionedState(FeatureEngine(), checkpoints)
    for partition, part in ((0, frame.iloc[:1000]), (1, frame.iloc[1000:2000])):
        state.engine.transform(encode_frame(part))
        state.touch(partition, part["customer_id"].tolist())
        state.advanced(partition, 1000)
    state.written({0: 1000})  # partition 1's batch is still on its way
    now = [0.0]
    scheduler = CheckpointScheduler(state, interval_s=30, clock=lambda: now[0])
    drains: list[int] = []

    now[0] = 31
    assert scheduler.tick(lambda: drains.append(1))
    scheduler.settle()
    scheduler.close()

    assert sorted(checkpoints.saved) == [0], "partition 1 is ahead of its written records"
    assert checkpoints.saved[0].next_offset == 1000
    assert drains, "the batch in flight is waited for before a snapshot"


def test_periodic_checkpoints_rest_between_slices_and_a_hand_over_does_not() -> None:
    """The periodic round spreads its writes (PERIODIC_REST); partitions leaving go at full speed."""

    class Recording(MemoryCheckpoints):
        def __init__(self) -> None:
            super().__init__()
            self.rests: list[float] = []

        def save(
            self, partition: int, next_offset: int, customers: list[tuple[str, bytes]], rest: float = 0.0
        ) -> None:
            self.rests.append(rest)
            super().save(partition, next_offset, customers, rest)

    frame = history()
    checkpoints = Recording()
    state = PartitionedState(FeatureEngine(), checkpoints)
    advance(state, frame.iloc[:1000], 1000)
    now = [0.0]
    scheduler = CheckpointScheduler(state, interval_s=30, clock=lambda: now[0])
    now[0] = 31
    scheduler.tick(lambda: None)
    scheduler.settle()
    advance(state, frame.iloc[1000:1500], 1500)
    scheduler.hand_over([0])
    scheduler.close()

    assert checkpoints.rests == [PERIODIC_REST, 0.0]
    assert PERIODIC_REST > 0
    assert checkpoints.saved[0].next_offset == 1500


@pytest.mark.parametrize(
    ("now", "last", "queued", "expected"),
    [(29.9, 0, False, False), (30, 0, False, True), (90, 0, True, False)],
)
def test_a_round_of_checkpoints_is_due_every_interval_unless_one_is_still_queued(
    now: float, last: float, queued: bool, expected: bool
) -> None:
    assert due(now, last, 30, queued) is expected
