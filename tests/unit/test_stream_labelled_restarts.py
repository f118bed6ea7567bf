"""The stream's feature state through restarts and hand-overs, on a labelled history: value for value
the features of an uninterrupted offline pass (training's replay, labels merged in by the time they
became known).

A consumer group in miniature, on the stream's own state path (`PartitionedState` over one shared
checkpoint store): members own partitions of a topic keyed by customer; records are consumed in
event-time order in micro-batches, each by the member that owns its partition; every fraud label
reaches every member as soon as it is known (their label poll; a member that starts reads every label
known so far first). Along the way: periodic checkpoints, members joining (partitions checkpointed at
revoke and restored at assign), a member killed (its partitions restored elsewhere from their last
checkpoint and replayed, state only, up to the committed offset), a member leaving into a running one,
and the whole group restarted.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from fraudops.features.encode import encode_records
from fraudops.features.engine import FeatureEngine, labels_from_history
from fraudops.features.spec import FEATURE_NAMES, N_FEATURES, FeatureConfig
from fraudops_simulator import SimulationConfig
from fraudops_stream.decode import decode_batch
from fraudops_stream.state import MemoryCheckpoints, PartitionedState
from tests.unit.histories import history_and_values

PARTITIONS = 4


@pytest.fixture(scope="module")
def history() -> tuple[pd.DataFrame, list[bytes]]:
    # Many labels, known soon: hand-overs and replays meet customers with labels applied.
    return history_and_values(
        SimulationConfig(
            transactions=20_000, customers=400, days=40, seed=5, fraud_rate=0.05, label_delay_days=2
        )
    )


@dataclass(eq=False)
class Member:
    """One consumer: its feature state, and how many of the known labels its label poll has read."""

    state: PartitionedState
    labels_read: int


class Group:
    """Members, the partitions they own, the committed offsets, and the features each record was decided with."""

    def __init__(self, frame: pd.DataFrame, values: list[bytes]) -> None:
        self.values = values
        self.times = frame["event_time"].dt.as_unit("ns").astype("int64").to_numpy() / 1e9
        labels = labels_from_history(frame, FeatureConfig())
        self.labels = labels.take(np.argsort(labels.known_at, kind="stable"))
        self.known = 0  # labels known so far (all delivered to every member)
        partition_of = np.asarray([zlib.crc32(c.encode()) % PARTITIONS for c in frame["customer_id"]])
        self.partition_of = partition_of
        self.records = {p: np.flatnonzero(partition_of == p) for p in range(PARTITIONS)}  # offset -> record
        self.offset_of = np.empty(len(frame), dtype=np.int64)
        for indexes in self.records.values():
            self.offset_of[indexes] = np.arange(len(indexes))
        self.committed = dict.fromkeys(range(PARTITIONS), 0)
        self.checkpoints = MemoryCheckpoints()
        self.owner: dict[int, Member] = {}
        self.decided = np.full((len(frame), N_FEATURES), np.nan, dtype=np.float32)
        self.was_decided = np.zeros(len(frame), dtype=bool)
        self.labelled_restores = 0  # restores of a state that already held applied labels

    def start(self) -> Member:
        """A new member: its first label poll reads every label known so far, before any record."""
        member = Member(PartitionedState(FeatureEngine(), self.checkpoints), self.known)
        member.state.engine.add_fraud_labels(self.labels.take(slice(0, self.known)))
        return member

    def members(self) -> list[Member]:
        return list({id(m): m for m in self.owner.values()}.values())

    def assign(self, member: Member, partitions: list[int]) -> None:
        """Restore each partition's checkpoint, then replay (state only) up to the committed offset."""
        for partition in partitions:
            resume_at = member.state.restore(partition) or 0
            self.labelled_restores += resume_at > 0 and self.known > 0
            replay = self.records[partition][resume_at : self.committed[partition]]
            if len(replay):
                self._feature(member, partition, replay)  # features discarded: those records are decided
            self.owner[partition] = member

    def revoke(self, member: Member, partitions: list[int]) -> None:
        """A clean hand-over: checkpoint, then forget."""
        for partition in partitions:
            assert member.state.checkpoint(partition) is not None
            member.state.release(partition)
            del self.owner[partition]

    def kill(self, member: Member) -> list[int]:
        """kill -9: no checkpoint; returns the partitions it owned."""
        lost = [p for p, m in self.owner.items() if m is member]
        for partition in lost:
            del self.owner[partition]
        return lost

    def checkpoint_all(self) -> None:
        for partition, member in self.owner.items():
            assert member.state.checkpoint(partition) is not None

    def consume(self, start: int, end: int) -> None:
        # the labels known by the batch's last record reach every member before it
        self.known = max(
            self.known, int(np.searchsorted(self.labels.known_at, self.times[end - 1], side="left"))
        )
        for member in self.members():
            member.state.engine.add_fraud_labels(self.labels.take(slice(member.labels_read, self.known)))
            member.labels_read = self.known
        batch = np.arange(start, end)
        for member in self.members():
            mine = batch[[self.owner[p] is member for p in self.partition_of[batch]]]
            if len(mine):
                self.decided[mine] = self._feature(member, None, mine)
                self.was_decided[mine] = True

    def _feature(self, member: Member, partition: int | None, records: np.ndarray) -> np.ndarray:
        """Records through the member's state as the consumer does (decode, features, touch, advance),
        then written and committed."""
        _, decoded, rejects = decode_batch([self.values[i] for i in records])
        assert not rejects
        state = member.state
        features = state.engine.transform(encode_records(decoded))
        partitions = self.partition_of[records] if partition is None else np.full(len(records), partition)
        for p in np.unique(partitions):
            here = records[partitions == p]
            state.touch(int(p), [decoded[i]["customer_id"] for i in np.flatnonzero(partitions == p)])
            next_offset = int(self.offset_of[here[-1]]) + 1
            state.advanced(int(p), next_offset)
            state.written({int(p): next_offset})
            self.committed[int(p)] = max(self.committed[int(p)], next_offset)
        return features


def run(
    frame: pd.DataFrame, values: list[bytes], seed: int, script: dict[float, Callable[[Group], None]]
) -> Group:
    """Consume the whole history in micro-batches of 1–500 records; at each fraction of it, a script step."""
    group = Group(frame, values)
    group.assign(group.start(), list(range(PARTITIONS)))
    steps = sorted((int(at * len(values)), step) for at, step in script.items())
    rng = np.random.default_rng(seed)
    start = 0
    while start < len(values):
        while steps and steps[0][0] <= start:
            steps.pop(0)[1](group)
        end = min(start + (1 if rng.random() < 0.2 else int(rng.integers(2, 500))), len(values))
        group.consume(start, end)
        start = end
    return group


def assert_equals_offline(frame: pd.DataFrame, group: Group) -> None:
    batch = FeatureEngine().replay(frame)
    assert group.was_decided.all(), "every record was decided once"
    differences = ~((batch == group.decided) | (np.isnan(batch) & np.isnan(group.decided)))
    assert not differences.any(), (
        f"{int(differences.sum())} values differ from the uninterrupted offline pass, first in feature "
        f"{FEATURE_NAMES[int(np.argwhere(differences)[0][1])]!r} of record {int(np.argwhere(differences)[0][0])}"
    )


def join(partitions: list[int]) -> Callable[[Group], None]:
    """A new member joins and the partitions move to it (checkpointed at revoke, restored at assign)."""

    def step(group: Group) -> None:
        newcomer = group.start()
        for partition in partitions:
            group.revoke(group.owner[partition], [partition])
        group.assign(newcomer, partitions)

    return step


def leave(partition_held: int, to_partition_owner: int) -> Callable[[Group], None]:
    """The member holding `partition_held` leaves cleanly; its partitions go to a running member."""

    def step(group: Group) -> None:
        leaving, staying = group.owner[partition_held], group.owner[to_partition_owner]
        assert leaving is not staying
        partitions = [p for p, m in group.owner.items() if m is leaving]
        group.revoke(leaving, partitions)
        group.assign(staying, partitions)

    return step


def kill(partition_held: int, to_partition_owner: int | None) -> Callable[[Group], None]:
    """The member holding `partition_held` is killed; its partitions are restored by a running member
    (or by a new one when `to_partition_owner` is None) from their last checkpoints, then replayed."""

    def step(group: Group) -> None:
        heir = group.start() if to_partition_owner is None else group.owner[to_partition_owner]
        group.assign(heir, group.kill(group.owner[partition_held]))

    return step


def restart_all(group: Group) -> None:
    """Every member stops cleanly (checkpointing all), and one new member takes every partition."""
    for member in group.members():
        group.revoke(member, [p for p, m in group.owner.items() if m is member])
    group.assign(group.start(), list(range(PARTITIONS)))


def checkpoint(group: Group) -> None:
    group.checkpoint_all()


def test_a_clean_restart_of_the_group_on_a_labelled_history_changes_no_feature(
    history: tuple[pd.DataFrame, list[bytes]],
) -> None:
    frame, values = history
    group = run(frame, values, seed=1, script={0.3: restart_all, 0.55: restart_all, 0.8: restart_all})
    assert group.labelled_restores >= 3 * PARTITIONS
    assert_equals_offline(frame, group)


def test_hand_overs_between_members_on_a_labelled_history_change_no_feature(
    history: tuple[pd.DataFrame, list[bytes]],
) -> None:
    frame, values = history
    group = run(
        frame,
        values,
        seed=2,
        script={
            0.25: join([2, 3]),  # a fresh member takes partitions 2 and 3 from the first
            0.45: join([0]),  # a third one takes partition 0
            0.6: leave(0, 2),  # and leaves: partition 0 goes to the running member holding 2 and 3
            0.75: leave(2, 1),  # that one leaves: everything goes back to the first
        },
    )
    assert group.labelled_restores >= 6
    assert_equals_offline(frame, group)


def test_a_killed_member_s_partitions_replayed_from_old_checkpoints_change_no_feature(
    history: tuple[pd.DataFrame, list[bytes]],
) -> None:
    # Replays span days of records: customers first seen here in a replay have labels already applied
    # by the member replaying them (to the label-risk tables, while it held no row for them).
    frame, values = history
    group = run(
        frame,
        values,
        seed=3,
        script={
            0.05: join([3]),
            0.3: kill(
                0, 3
            ),  # partitions 0-2, never checkpointed, replayed from offset 0 into the running one
            0.4: checkpoint,
            0.5: join([1, 2]),
            0.6: checkpoint,
            0.75: kill(1, 0),  # into the running member: from the 0.6 checkpoint, replayed to the commit
            0.85: kill(0, None),  # the last one, into a new member
        },
    )
    assert group.labelled_restores >= 4
    assert_equals_offline(frame, group)
