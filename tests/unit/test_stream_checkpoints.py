"""Checkpoints write only the customers that changed, and a restore still brings back every customer."""

from __future__ import annotations

import pandas as pd
import pytest

from fraudops.features.encode import encode_frame
from fraudops.features.engine import FeatureEngine
from fraudops.schema import TRANSACTION_FIELDS
from fraudops_simulator import SimulationConfig, simulate
from fraudops_stream.state import MemoryCheckpoints, PartitionedState


def history() -> pd.DataFrame:
    frame = pd.concat(
        [t.to_pandas() for t in simulate(SimulationConfig(transactions=3000, customers=300, seed=9))]
    )
    return frame[[c for c in frame.columns if c in TRANSACTION_FIELDS]].sort_values(
        "event_time", kind="stable"
    )


def advance(state: PartitionedState, part: pd.DataFrame, position: int) -> None:
    state.engine.transform(encode_frame(part))
    state.touch(0, part["customer_id"].tolist())
    state.position[0] = position


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
    assert written_second == second["customer_id"].nunique() < len(everyone), "only the changed ones"
    assert resume_at == 3000
    assert restored.engine.export_customers(everyone) == state.engine.export_customers(everyone)


def test_a_failed_save_leaves_its_customers_to_the_next_checkpoint() -> None:
    class Failing(MemoryCheckpoints):
        fail = True

        def save(self, partition: int, next_offset: int, customers: list[tuple[str, bytes]]) -> None:
            if self.fail:
                raise OSError("database away")
            super().save(partition, next_offset, customers)

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
