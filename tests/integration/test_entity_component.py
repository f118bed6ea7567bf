"""The entity-state component with the stream consumer, on real Kafka and PostgreSQL: the scores the
stream stores equal an uninterrupted offline pass that keeps the entity table as training's replay
does — through fraud labels and a kill -9 of the component between two phases of the history.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import orjson
import psycopg
import pytest

from fraudops import entitystore, statestore
from fraudops.artifact import load_artifact
from fraudops.features.engine import LabelEvents
from fraudops.features.spec import DAY, FeatureConfig
from fraudops_infra.stack import LocalStack
from tests.integration.conftest import free_port
from tests.integration.streaming import (
    StreamSetup,
    assert_matches_reference,
    metric,
    produce,
    reference_run,
    simulated_records,
    stop,
    stream_test,
    wait_for_count,
    wait_until_caught_up,
)
from tests.waiting import wait_until

# In `make test` (~2 min); `pytest -m entity_component tests/integration/test_entity_component.py` runs it alone.
pytestmark = [pytest.mark.integration, pytest.mark.entity_component]


@pytest.fixture()
def trained_artifact(entity_trained_artifact: Path) -> Path:
    """This module's model uses the entity-risk features: what the component exists to serve."""
    return entity_trained_artifact


@pytest.fixture()
def stream_setup(
    local_stack: LocalStack, scratch_database: str, trained_artifact: Path, tmp_path: Path
) -> Iterator[StreamSetup]:
    with stream_test(local_stack, scratch_database, trained_artifact, tmp_path, ENTITY_TABLE="true") as setup:
        yield setup


def published_epoch(db_url: str, topic: str) -> int | None:
    with psycopg.connect(db_url) as conn:
        return entitystore.published_epoch(conn, topic)


def wait_until_published(setup: StreamSetup, epoch: int, what: str, alive: list[subprocess.Popen]) -> None:
    """Until the component has published `epoch` of the setup's topic."""
    wait_until(
        lambda: (published_epoch(setup.db_url, setup.topic) or 0) >= epoch,
        120,
        what,
        interval_s=0.5,
        alive=alive,
    )


def test_stream_scores_with_the_published_entity_table_equal_the_offline_replay_through_a_kill_9(
    stream_setup: StreamSetup, trained_artifact: Path
) -> None:
    records = simulated_records(20_000, seed=23)
    values = [value for _, value in records]
    parsed = [orjson.loads(value) for value in values]
    times = [datetime.fromisoformat(p["event_time"]).timestamp() for p in parsed]
    assert times == sorted(times)
    first_phase = 10_000
    while times[first_phase] == times[first_phase - 1]:
        first_phase += 1
    known_at = datetime.fromtimestamp(round((times[first_phase - 1] + times[first_phase]) / 2, 6), tz=UTC)
    rng = np.random.default_rng(23)
    labelled = rng.choice(first_phase, 300, replace=False)

    # The 20-day history arrives at once: the consumer can be days of event time behind the component,
    # so the component keeps the whole history's deltas (the default keeps a day); a snapshot every hour.
    # The component keeps the table with the model's settings (the test model's label delay is 5 days,
    # not the default 7: the consumer takes the model's, and refuses a table kept with other ones).
    trained_with = FeatureConfig.from_dict(load_artifact(str(trained_artifact)).metadata.feature_config)
    assert trained_with != FeatureConfig()
    component_args = (
        *("--retain-epochs", str(40 * 1440), "--snapshot-every", "60"),
        *("--label-delay-days", f"{trained_with.label_delay_s / DAY:g}"),
        *("--epoch-seconds", f"{trained_with.entity_epoch_s:g}"),
    )
    component = stream_setup.entity_state("entities-1", *component_args)
    consumer_metrics = free_port()
    consumer = stream_setup.consumer("consumer", metrics_port=consumer_metrics)
    try:
        produce(stream_setup.bootstrap, stream_setup.topic, records[:first_phase])
        assert wait_for_count(stream_setup.db_url, first_phase, 240, [component, consumer]) == first_phase
        with psycopg.connect(stream_setup.db_url) as conn:
            conn.cursor().executemany(
                "INSERT INTO feedback_labels (transaction_id, is_fraud, label_known_at, source) "
                "VALUES (%s, true, %s, 'test')",
                [(parsed[i]["transaction_id"], known_at) for i in labelled],
            )
        for name, proc in (("entities-1", component), ("consumer", consumer)):
            wait_until(
                lambda n=name: '"labels": 300' in stream_setup.log(n),
                60,
                f"{name} to read the labels",
                interval_s=0.5,
                alive=[proc],
            )
        last_epoch = int(times[first_phase - 1] // trained_with.entity_epoch_s)
        wait_until_published(
            stream_setup, last_epoch, "the component to publish the first phase", [component]
        )
        component.send_signal(signal.SIGKILL)  # no warning: it resumes from what it published
        component.wait(timeout=30)

        component = stream_setup.entity_state("entities-2", *component_args)
        produce(stream_setup.bootstrap, stream_setup.topic, records[first_phase:])
        assert wait_for_count(stream_setup.db_url, len(records), 240, [component, consumer]) == len(records)
        wait_until_caught_up(stream_setup, 120, [consumer])
        metrics_url = f"http://127.0.0.1:{consumer_metrics}/metrics"
        assert "fraudops_consumer_entity_stale_reads_total" in httpx.get(metrics_url, timeout=5).text
        stale_reads = metric(metrics_url, "fraudops_consumer_entity_stale_reads_total")
    finally:
        stop(consumer)
        stop(component)
    assert "entity table restored" in stream_setup.log("entities-2")
    assert stale_reads == 0, "every record read the entity table at its own epoch"
    with psycopg.connect(stream_setup.db_url) as conn:
        labels, _ = statestore.fetch_fraud_labels(conn, None)
    assert len(labels) == 300
    # the labels read online carry their transactions' times, as training's labels do
    assert sorted(labels.event_times.tolist()) == pytest.approx(sorted(times[i] for i in labelled), abs=1e-6)
    assert_matches_reference(
        stream_setup.db_url, values, trained_artifact, stream_setup.topic, labels, entity_table=True
    )
    # and the entity features carried weight: without them the scores would have been different
    with_table, _ = reference_run(values, trained_artifact, labels, entity_table=True)
    without_table, _ = reference_run(values, trained_artifact, labels, entity_table=False)
    changed = sum(abs(with_table[t] - without_table[t]) > 1e-6 for t in with_table)
    assert changed > len(values) // 10, f"only {changed} scores depend on the entity features"


def test_a_consumer_waiting_longer_than_its_poll_interval_for_the_component_keeps_its_partitions(
    stream_setup: StreamSetup, trained_artifact: Path
) -> None:
    # The consumer may take at most 15 s per batch before the group hands its partitions to another; the
    # entity-state component starts more than twice that late. The consumer puts its batch back, pauses,
    # polls on, and takes the records once the component has published them: no rebalance, every score
    # equal to the replay's.
    records = simulated_records(3_000, seed=29)
    values = [value for _, value in records]
    trained_with = FeatureConfig.from_dict(load_artifact(str(trained_artifact)).metadata.feature_config)
    consumer = stream_setup.consumer("consumer", args=("--max-poll-interval", "15"))
    component = None
    try:
        produce(stream_setup.bootstrap, stream_setup.topic, records)
        wait_until(
            lambda: "partitions paused" in stream_setup.log("consumer"),
            120,
            "the consumer to pause",
            interval_s=0.5,
            alive=[consumer],
        )
        paused_at = time.monotonic()
        # the scenario is time passing: a poll interval exceeded twice over while the component is away
        wait_until(
            lambda: time.monotonic() - paused_at > 35, 60, "35 s of waiting", interval_s=0.5, alive=[consumer]
        )
        component = stream_setup.entity_state(
            "entities",
            *("--label-delay-days", f"{trained_with.label_delay_s / DAY:g}"),
            *("--epoch-seconds", f"{trained_with.entity_epoch_s:g}"),
        )
        assert wait_for_count(stream_setup.db_url, len(records), 240, [component, consumer]) == len(records)
        wait_until_caught_up(stream_setup, 120, [consumer])
    finally:
        stop(consumer)
        if component is not None:
            stop(component)
    log = stream_setup.log("consumer")
    assert "maximum poll interval" not in log.lower() and "partitions lost" not in log
    assert "partition revoked" not in log.split("stop requested")[0], "no rebalance while it waited"
    assert "partitions resumed" in log
    assert_matches_reference(
        stream_setup.db_url,
        values,
        trained_artifact,
        stream_setup.topic,
        LabelEvents.empty(),
        entity_table=True,
    )


def test_a_consumer_refuses_the_entity_model_at_start_when_no_entity_table_is_attached(
    stream_setup: StreamSetup, trained_artifact: Path
) -> None:
    # Served without the table the thirty entity features are unknown and the trees send every row down
    # their missing-value branches (in the cluster: 1,736 of 2,000 flagged): the consumer must not start.
    metadata = load_artifact(str(trained_artifact)).metadata
    assert metadata.training["entity_features"] is True
    consumer = stream_setup.consumer("consumer", ENTITY_TABLE="false")
    assert consumer.wait(timeout=180) != 0
    log = stream_setup.log("consumer")
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, log
    assert f"{metadata.name}:{metadata.version}" in errors[0]
    assert "ENTITY_TABLE=true" in errors[0] and "retrain without --entity-features" in errors[0]


def test_a_second_component_of_the_same_topic_waits_until_the_first_is_gone(
    stream_setup: StreamSetup,
) -> None:
    # One instance may own a topic's table (the operator runs one replica with the Recreate strategy); a
    # second one that still appears — a pod on a partitioned node, a run by hand — must not publish over it.
    records = simulated_records(4_000, seed=31)
    times = [datetime.fromisoformat(orjson.loads(value)["event_time"]).timestamp() for _, value in records]
    half = 2_000
    while times[half] == times[half - 1]:
        half += 1
    first = stream_setup.entity_state("entities-1")
    second = None
    try:
        stream_setup.wait_for_log("entities-1", "entity table taken", 120, [first])
        second = stream_setup.entity_state("entities-2")
        stream_setup.wait_for_log(
            "entities-2", "another entity-state component writes the entity table", 120, [second]
        )
        produce(stream_setup.bootstrap, stream_setup.topic, records[:half])
        first_epoch = int(times[half - 1] // FeatureConfig().entity_epoch_s)
        wait_until_published(
            stream_setup, first_epoch, "the first component to publish the first half", [first, second]
        )
        assert "entity table taken" not in stream_setup.log("entities-2")

        first.send_signal(signal.SIGKILL)  # its session ends, and the lock with it
        first.wait(timeout=30)
        stream_setup.wait_for_log("entities-2", "entity table taken", 60, [second])
        produce(stream_setup.bootstrap, stream_setup.topic, records[half:])
        last_epoch = int(times[-1] // FeatureConfig().entity_epoch_s)
        wait_until_published(
            stream_setup, last_epoch, "the second component to publish the second half", [second]
        )
    finally:
        stop(first)
        if second is not None:
            stop(second)
    assert "entity table restored" in stream_setup.log("entities-2")
