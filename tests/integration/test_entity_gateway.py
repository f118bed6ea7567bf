"""The gateway with the entity table (ENTITY_TABLE=true), on real Kafka and PostgreSQL: after the
entity-state component published a history and the stream consumer checkpointed its customers, the
gateway (a real server process) scores new transactions of the newest epoch as an uninterrupted offline
pass over history + transactions does — customer and entity features alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fraudops import entitystore
from fraudops.artifact import load_artifact
from fraudops.features.spec import DAY, FeatureConfig
from fraudops_infra.stack import LocalStack
from tests.integration.streaming import (
    StreamSetup,
    produce,
    reference_run,
    simulated_records,
    stop,
    stream_test,
    wait_for_count,
)
from tests.integration.test_gateway_support import base_env, serving
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.entity_component]

NEW_TRANSACTIONS = 40


@pytest.fixture()
def stream_setup(
    local_stack: LocalStack, scratch_database: str, entity_trained_artifact: Path, tmp_path: Path
) -> Iterator[StreamSetup]:
    with stream_test(
        local_stack, scratch_database, entity_trained_artifact, tmp_path, ENTITY_TABLE="true"
    ) as setup:
        yield setup


def new_transactions(history: list[bytes], at: float) -> list[dict]:
    """Copies of the newest transactions of distinct customers, at time `at`: known customers (their
    state was checkpointed) at known merchants, terminals, devices, IPs and beneficiaries."""
    chosen: dict[str, dict] = {}
    for value in reversed(history):
        record = orjson.loads(value)
        chosen.setdefault(record["customer_id"], record)
        if len(chosen) == NEW_TRANSACTIONS:
            break
    stamp = datetime.fromtimestamp(at, tz=UTC).isoformat()
    return [
        {**record, "transaction_id": f"new-{number}", "event_time": stamp}
        for number, record in enumerate(chosen.values())
    ]


def gateway_metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return next(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def test_the_gateway_scores_with_the_published_entity_table_as_the_offline_replay(
    stream_setup: StreamSetup, entity_trained_artifact: Path, tmp_path: Path
) -> None:
    records = simulated_records(6_000, seed=43)
    history = [value for _, value in records]
    newest = max(datetime.fromisoformat(orjson.loads(v)["event_time"]).timestamp() for v in history)
    trained_with = FeatureConfig.from_dict(
        load_artifact(str(entity_trained_artifact)).metadata.feature_config
    )
    epoch = math.floor(newest / trained_with.entity_epoch_s)
    component = stream_setup.entity_state(
        "entities",
        *("--label-delay-days", f"{trained_with.label_delay_s / DAY:g}"),
        *("--epoch-seconds", f"{trained_with.entity_epoch_s:g}"),
    )
    consumer = stream_setup.consumer("consumer")
    try:
        produce(stream_setup.bootstrap, stream_setup.topic, records)
        assert wait_for_count(stream_setup.db_url, len(history), 240, [component, consumer]) == len(history)

        def published() -> int | None:
            with psycopg.connect(stream_setup.db_url) as conn:
                return entitystore.published_epoch(conn, stream_setup.topic)

        # every partition caught up: the component closes every epoch before the newest transaction's
        wait_until(lambda: published() == epoch, 120, "the newest epoch published", alive=[component])
    finally:
        stop(consumer)
        stop(component)

    # New transactions in that epoch read the table as of its start: what the replay gives them too.
    # (A later epoch would also need the newest epoch's own transactions, which are not published yet.)
    transactions = new_transactions(history, newest)
    offline, _ = reference_run(
        [*history, *map(orjson.dumps, transactions)], entity_trained_artifact, entity_table=True
    )
    without_table, _ = reference_run(
        [*history, *map(orjson.dumps, transactions)], entity_trained_artifact, entity_table=False
    )
    ids = [t["transaction_id"] for t in transactions]
    changed = sum(abs(offline[i] - without_table[i]) > 1e-4 for i in ids)
    assert changed >= NEW_TRANSACTIONS // 4, f"only {changed} scores depend on the entity table"

    env = base_env(
        DB_URL=stream_setup.db_url,
        MODEL_PATH=str(entity_trained_artifact),
        TRANSACTIONS_TOPIC=stream_setup.topic,
        ENTITY_TABLE="true",
    )
    with serving(["gateway"], env, tmp_path / "gateway.log", "/health/ready") as gateway:
        answers = {
            t["transaction_id"]: httpx.post(f"{gateway.url}/predict", json=t, timeout=10).json()
            for t in transactions
        }
        mirrored_epoch = gateway_metric(gateway.url, "fraudops_gateway_entity_epoch")
    assert mirrored_epoch == epoch
    for transaction_id in ids:
        assert answers[transaction_id]["fraud_probability"] == pytest.approx(
            offline[transaction_id], abs=1e-6
        ), transaction_id
