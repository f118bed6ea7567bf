"""The stream consumer's side of the entity table: its mirror of the published table, and each record's
entity features read at the epoch `FeatureConfig.read_epochs` gives each record (docs/entity-features.md).

    reads = EntityReads(topic, config)
    reads.published_epoch(conn)                       # how far the entity-state component has published
    mirror = reads.mirror_up_to(conn, oldest, newest)  # the mirror holding epochs oldest..newest
    reads.fill(batch, partitions, features)           # the entity part of a batch's features

The consumer decides when to wait for the component (`fraudops_stream.consumer`); this module only reads.
"""

from __future__ import annotations

import logging

import numpy as np
import psycopg

from fraudops import entitystore
from fraudops.features import layout as L
from fraudops.features.encode import EncodedBatch
from fraudops.features.entity_mirror import EntityMirror
from fraudops.features.spec import FeatureConfig
from fraudops_stream import metrics

log = logging.getLogger(__name__)
#: rows of entity-table changes a consumer's mirror keeps to move back to its slowest partition's epoch
#: (~620 bytes a row: ~125 MB); a partition further behind than that makes the mirror rebuild from a snapshot
ENTITY_HISTORY_ROWS = 200_000


class EntityReads:
    """The mirror a consumer reads entity features from, and how far back each partition still reads."""

    def __init__(self, topic: str, config: FeatureConfig) -> None:
        self.topic = topic
        self.config = config
        self.mirror: EntityMirror | None = None
        #: per partition, the newest epoch read (its next records read no older one)
        self.partition_epochs: dict[int, int] = {}

    def epochs(self, batch: EncodedBatch) -> np.ndarray:
        """The epoch each record of the batch reads the table at."""
        return self.config.read_epochs(batch.txf[:, L.TF_TIME])

    def published_epoch(self, conn: psycopg.Connection) -> int | None:
        return entitystore.published_epoch(conn, self.topic)

    def mirror_up_to(self, conn: psycopg.Connection, oldest: int, newest: int) -> EntityMirror | None:
        """The mirror holding the published table from `oldest` to `newest`; None while the component has
        not published `newest` yet. It is rebuilt from a snapshot when its history does not reach back to
        `oldest` (a partition further behind than it keeps) or when the deltas it needs next were pruned."""
        published = self.published_epoch(conn)
        if published is None or published < newest:
            return None
        mirror = self.mirror
        if mirror is None or oldest < mirror.oldest_readable_epoch:
            mirror = self._rebuilt(conn, oldest)
        deltas = entitystore.read_deltas(conn, self.topic, mirror.newest_epoch, newest)
        # checked after the read: a prune between the two only costs a needless rebuild
        if not entitystore.deltas_kept_after(conn, self.topic, mirror.newest_epoch):
            mirror = self._rebuilt(conn, oldest)
            deltas = entitystore.read_deltas(conn, self.topic, mirror.newest_epoch, newest)
        mirror.apply(deltas)
        mirror.advance(newest)
        return mirror

    def fill(self, batch: EncodedBatch, partitions: list[int], features: np.ndarray) -> None:
        """The entity features of a batch (the mirror holds its epochs): each record at the epoch it reads."""
        mirror = self.mirror
        assert mirror is not None, "mirror_up_to first"
        stale_before = mirror.stale_reads
        mirror.features(batch.txf[:, L.TF_TIME], batch.risk_keys, self.config, features)
        metrics.ENTITY_STALE_READS.inc(mirror.stale_reads - stale_before)
        for partition, epoch in zip(partitions, self.epochs(batch).tolist(), strict=True):
            self.partition_epochs[partition] = max(self.partition_epochs.get(partition, epoch), epoch)
        # a partition's records come in event-time order: none of them reads older than its newest so far
        mirror.forget_before(min(self.partition_epochs.values()))

    def release(self, partition: int) -> None:
        self.partition_epochs.pop(partition, None)

    def _rebuilt(self, conn: psycopg.Connection, oldest: int) -> EntityMirror:
        entitystore.check_published_config(conn, self.topic, self.config)
        mirror = entitystore.load_mirror(conn, self.topic, oldest, keep_epochs=None)
        assert mirror is not None, "a published epoch has a snapshot at or before it"
        mirror.max_history_rows = ENTITY_HISTORY_ROWS
        mirror.forget_before(oldest)  # the deltas from the snapshot up to `oldest`: no read needs them
        if mirror.oldest_readable_epoch > oldest:
            log.warning(
                "entity table: no snapshot reaches back to a partition's epoch; its reads come from a newer table",
                extra={"epoch": oldest, "oldest_snapshot": mirror.oldest_readable_epoch},
            )
        log.info("entity mirror built", extra={"epoch": mirror.epoch, "entities": len(mirror.table)})
        self.mirror = mirror
        return mirror
