"""The gateway decides with the state the stream consumer built: one customer, one history, both paths.

The consumer processes a customer's history from Kafka and checkpoints it to PostgreSQL; the
gateway (a real server process) then scores that customer's next transaction. Its score must equal
the score of an uninterrupted offline pass over history + transaction — and differ from the score
the same transaction gets for a customer without history.
"""

from __future__ import annotations

import gc
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from fraudops.artifact import load_artifact
from fraudops.config import Settings
from fraudops.db import migrate
from fraudops.features.encode import encode_records
from fraudops.features.engine import FeatureEngine
from fraudops.scoring import Scorer
from fraudops_infra.stack import LocalStack
from fraudops_stream.consumer import ConsumerOptions, StreamConsumer
from fraudops_stream.decode import decode_batch
from tests.integration.test_gateway_support import base_env, serving
from tests.integration.test_stream import produce, simulated_records

pytestmark = pytest.mark.integration


def test_the_gateway_scores_with_the_state_the_consumer_checkpointed(
    local_stack: LocalStack, scratch_database: str, trained_artifact: Path, tmp_path: Path
) -> None:
    migrate.upgrade(scratch_database)
    topic = f"shared-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": local_stack.kafka.bootstrap})
    for future in admin.create_topics([NewTopic(topic, 3, 1)]).values():
        future.result(timeout=30)
    history = simulated_records(3_000, seed=31)
    produce(local_stack.kafka.bootstrap, topic, history)

    settings = Settings(
        db_url=scratch_database,
        kafka_bootstrap_servers=local_stack.kafka.bootstrap,
        transactions_topic=topic,
        consumer_group=f"g-{topic}",
        model_path=str(trained_artifact),
    )
    consumer = StreamConsumer(settings, ConsumerOptions(batch_size=500, idle_exit_s=3, metrics_port=None))
    consumer.run()
    del consumer  # its Kafka clients go now, not after the broker (their retries would only add noise)
    gc.collect()

    _, decoded, _ = decode_batch([value for _, value in history])
    customer = max(
        {r["customer_id"] for r in decoded}, key=lambda c: sum(r["customer_id"] == c for r in decoded)
    )
    last = max(datetime.fromisoformat(r["event_time"]) for r in decoded if r["customer_id"] == customer)
    next_transaction = {
        "transaction_id": "next-1",
        "event_time": (last + timedelta(minutes=7)).isoformat(),
        "customer_id": customer,
        "amount": 640.0,
        "merchant_id": "M-never-seen",
        "merchant_category": "electronics",
        "channel": "WEB",
        "transaction_type": "PURCHASE",
        "is_international": True,
        "country": "PT",
        "device_id": "dev-never-seen",
        "ip_address": "203.0.113.200",
    }

    # offline: the uninterrupted pass over the whole history, then the new transaction
    engine = FeatureEngine()
    engine.transform(encode_records(decoded))
    _, next_decoded, _ = decode_batch([orjson.dumps(next_transaction)])
    scorer = Scorer(load_artifact(str(trained_artifact)))
    expected = float(scorer.score(engine.transform(encode_records(next_decoded)))[0])
    without_history = float(scorer.score(FeatureEngine().transform(encode_records(next_decoded)))[0])
    assert abs(expected - without_history) > 1e-4, (
        "the history changes the score (else the test proves nothing)"
    )

    env = base_env(DB_URL=scratch_database, MODEL_PATH=str(trained_artifact))
    with serving(["gateway"], env, tmp_path / "gateway.log", "/health/ready") as gateway:
        answer = httpx.post(f"{gateway.url}/predict", json=next_transaction, timeout=10).json()
    assert answer["fraud_probability"] == pytest.approx(expected, abs=1e-6)
