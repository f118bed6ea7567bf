"""The entity-state component with the stream consumer, on real Kafka and PostgreSQL: the scores the
stream stores equal an uninterrupted offline pass that keeps the entity table as training's replay
does — through fraud labels and a kill -9 of the component between two phases of the history, and
through a PostgreSQL restart the component reconnects after by itself. One writer per topic, also
across a lost session; and its probes: alive while it waits, ready once caught up.
"""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.parse
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
from tests.integration.tcp_forward import CuttableLine
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


def trained_settings(artifact: Path) -> FeatureConfig:
    """The entity settings the model was trained with (its artifact's feature_config)."""
    return FeatureConfig.from_dict(load_artifact(str(artifact)).metadata.feature_config)


def settings_flags(config: FeatureConfig) -> tuple[str, ...]:
    """The component's flags that keep the table with `config` (a consumer refuses a table kept otherwise)."""
    return (
        *("--label-delay-days", f"{config.label_delay_s / DAY:g}"),
        *("--epoch-seconds", f"{config.entity_epoch_s:g}"),
    )


def assert_scores_equal_the_replay_without_labels(
    setup: StreamSetup, values: list[bytes], artifact: Path
) -> None:
    assert_matches_reference(
        setup.db_url, values, artifact, setup.topic, LabelEvents.empty(), entity_table=True
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
    trained_with = trained_settings(trained_artifact)
    assert trained_with != FeatureConfig()
    component_args = (
        *("--retain-epochs", str(40 * 1440), "--snapshot-every", "60"),
        *settings_flags(trained_with),
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
    trained_with = trained_settings(trained_artifact)
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
        component = stream_setup.entity_state("entities", *settings_flags(trained_with))
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
    assert_scores_equal_the_replay_without_labels(stream_setup, values, trained_artifact)


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


def event_times(records: list[tuple[str, bytes]]) -> list[float]:
    return [datetime.fromisoformat(orjson.loads(value)["event_time"]).timestamp() for _, value in records]


def split_at_epoch_boundary(times: list[float], near: int, epoch_s: float) -> int:
    """An index near `near` where a new epoch begins: the records before it close their epochs."""
    while times[near] // epoch_s == times[near - 1] // epoch_s:
        near += 1
    return near


def test_the_component_reconnects_after_a_postgresql_restart_and_the_stream_scores_equal_the_replay(
    stream_setup: StreamSetup, local_stack: LocalStack, trained_artifact: Path
) -> None:
    # PostgreSQL shuts down (fast: every session ends, the component's writer lock with it) while the
    # component publishes and records keep arriving, then starts again. The component must reconnect,
    # take its table again and resume from what was committed — the epochs in flight at the shutdown
    # closed again, none lost, none applied twice — or every consumer with ENTITY_TABLE=true stalls.
    records = simulated_records(20_000, seed=37)
    values = [value for _, value in records]
    trained_with = trained_settings(trained_artifact)
    epoch_s = trained_with.entity_epoch_s
    times = event_times(records)
    before, during = 8_000, 14_000
    component = stream_setup.entity_state(
        "entities",
        *("--retain-epochs", str(40 * 1440), "--snapshot-every", "60"),
        *settings_flags(trained_with),
    )
    consumer_metrics = free_port()
    consumer = stream_setup.consumer("consumer", metrics_port=consumer_metrics)
    try:
        produce(stream_setup.bootstrap, stream_setup.topic, records[:before])
        wait_until_published(
            stream_setup, int(times[before // 2] // epoch_s), "the component to be publishing", [component]
        )
        local_stack.postgres.down()
        produce(stream_setup.bootstrap, stream_setup.topic, records[before:during])  # during the outage
        stream_setup.wait_for_log("entities", "dependency unavailable; retrying", 120, [component])
        local_stack.postgres.up()
        started = time.monotonic()
        produce(stream_setup.bootstrap, stream_setup.topic, records[during:])
        wait_until_published(
            stream_setup, int(times[-1] // epoch_s), "the component to publish after the restart", [component]
        )
        published_after_s = time.monotonic() - started
        assert wait_for_count(stream_setup.db_url, len(records), 240, [component, consumer]) == len(records)
        wait_until_caught_up(stream_setup, 120, [consumer])
        stale_reads = metric(
            f"http://127.0.0.1:{consumer_metrics}/metrics", "fraudops_consumer_entity_stale_reads_total"
        )
    finally:
        stop(consumer)
        stop(component)
    log = stream_setup.log("entities")
    assert log.count("entity table taken") == 2, "one process: the lock taken again on a new session"
    assert "PostgreSQL session lost" in log
    assert published_after_s < 60, f"published everything {published_after_s:.1f} s after the restart"
    assert stale_reads == 0, "every record read the entity table at its own epoch"
    assert_scores_equal_the_replay_without_labels(stream_setup, values, trained_artifact)


def probe(port: int, path: str) -> int:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code
    except httpx.TransportError:
        return 0


def wait_for_probe(port: int, path: str, status: int, what: str, alive: list[subprocess.Popen]) -> None:
    wait_until(
        lambda: probe(port, path) == status, 60, f"{what}: {path} {status}", interval_s=0.5, alive=alive
    )


def test_an_instance_that_took_the_table_while_the_first_was_cut_off_keeps_it_and_the_first_only_waits(
    stream_setup: StreamSetup,
) -> None:
    # The first component's line to PostgreSQL is cut: its session ends (the server sees the connection
    # close), the writer lock with it, and a second instance takes the table. When the line is mended the
    # first reconnects — and must take the lock again before writing anything: it finds it held, and waits
    # (alive, not ready) while the second publishes; it takes over only once the second is gone.
    records = simulated_records(6_000, seed=41)
    epoch_s = FeatureConfig().entity_epoch_s
    times = event_times(records)
    one = split_at_epoch_boundary(times, 2_000, epoch_s)
    two = split_at_epoch_boundary(times, 4_000, epoch_s)
    url = urllib.parse.urlsplit(stream_setup.db_url)
    line = CuttableLine(f"{url.hostname}:{url.port}")
    through_line = url._replace(netloc=f"{url.username}@127.0.0.1:{line.port}").geturl()
    first_port, second_port = free_port(), free_port()
    first = stream_setup.entity_state(
        "entities-1", "--outage-limit", "3", metrics_port=first_port, DB_URL=through_line
    )
    second = None
    try:
        stream_setup.wait_for_log("entities-1", "entity table taken", 120, [first])
        second = stream_setup.entity_state("entities-2", "--outage-limit", "3", metrics_port=second_port)
        stream_setup.wait_for_log("entities-2", "another entity-state component writes", 120, [second])
        produce(stream_setup.bootstrap, stream_setup.topic, records[:one])
        wait_until_published(stream_setup, int(times[one - 1] // epoch_s), "the first to publish", [first])
        wait_for_probe(first_port, "/readyz", 200, "the first, caught up", [first])
        assert probe(second_port, "/livez") == 200, "waiting for a lock another instance holds is alive"
        assert probe(second_port, "/readyz") == 503

        line.cut()
        stream_setup.wait_for_log("entities-2", "entity table taken", 60, [second])
        stream_setup.wait_for_log("entities-1", "PostgreSQL session lost", 60, [first])
        first_published = metric(f"http://127.0.0.1:{first_port}/metrics", "fraudops_entity_published_epoch")
        wait_for_probe(first_port, "/livez", 503, "the first, cut off longer than its limit", [first])
        line.mend()
        # it reconnects, asks for the lock, and finds the table taken
        stream_setup.wait_for_log("entities-1", "another entity-state component writes", 60, [first])
        wait_for_probe(first_port, "/livez", 200, "the first, waiting for the lock", [first])
        produce(stream_setup.bootstrap, stream_setup.topic, records[one:two])
        wait_until_published(
            stream_setup, int(times[two - 1] // epoch_s), "the second to publish", [first, second]
        )
        wait_for_probe(second_port, "/readyz", 200, "the second, caught up", [second])
        assert probe(first_port, "/readyz") == 503
        assert (
            metric(f"http://127.0.0.1:{first_port}/metrics", "fraudops_entity_published_epoch")
            == first_published
        ), "the first published nothing while the second held the table"
        assert stream_setup.log("entities-1").count("entity table taken") == 1

        stop(second)  # its session ends: now the first takes the table, from what the second published
        wait_until(
            lambda: stream_setup.log("entities-1").count("entity table taken") == 2,
            60,
            "the first to take the table once the second is gone",
            interval_s=0.5,
            alive=[first],
        )
        produce(stream_setup.bootstrap, stream_setup.topic, records[two:])
        wait_until_published(
            stream_setup, int(times[-1] // epoch_s), "the first to publish the rest", [first]
        )
        wait_for_probe(first_port, "/readyz", 200, "the first, caught up again", [first])
    finally:
        line.close()
        stop(first)
        if second is not None:
            stop(second)
