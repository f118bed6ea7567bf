"""Locust scenarios for the gateway and the KServe predictor, for people who want Locust's UI.

    locust -f loadtest/locustfile.py GatewayUser --host http://127.0.0.1:8000
    locust -f loadtest/locustfile.py KServeV2User KServeV1User --host http://127.0.0.1:8081

Each user sends at most REQUESTS_PER_USER_PER_S requests a second (`constant_throughput`), so
users × that rate is the offered load. Locust users are closed loop (a slow response delays that
user's next request) and cost about a millisecond of CPU per request: for the benchmark numbers
(open loop, latency from each request's due time, a light generator) use `fraudops bench`.
Settings: REQUESTS_PER_USER_PER_S (default 10), MODEL_NAME (card-fraud), V2_BATCH_ROWS (1000),
GATEWAY_API_KEY (sent as X-API-Key when set).
"""

from __future__ import annotations

import itertools
import os
import random
import uuid
from typing import Any, ClassVar

import numpy as np
import orjson
from locust import constant_throughput, events, tag, task
from locust.contrib.fasthttp import FastHttpUser

RATE = float(os.environ.get("REQUESTS_PER_USER_PER_S", "10"))
MODEL_NAME = os.environ.get("MODEL_NAME", "card-fraud")
V2_BATCH_ROWS = int(os.environ.get("V2_BATCH_ROWS", "1000"))
JSON = {"Content-Type": "application/json"}


class Workload:
    """Simulated transactions and their feature rows, made once per Locust process."""

    transactions: ClassVar[list[dict[str, Any]]] = []
    features: ClassVar[np.ndarray] = np.empty((0, 0), dtype=np.float32)

    @classmethod
    def prepare(cls, count: int = 20_000) -> None:
        from fraudops_bench.gateway import predict_bodies
        from fraudops_bench.predictor import feature_rows

        cls.transactions = [
            orjson.loads(body) for body in predict_bodies(count, seed=random.randrange(10_000))
        ]
        cls.features = feature_rows(max(V2_BATCH_ROWS * 4, 4000))


@events.test_start.add_listener
def _prepare(environment: Any, **_: Any) -> None:
    Workload.prepare()


class GatewayUser(FastHttpUser):
    """POST /predict with full transactions (9 in 10) and legacy payloads, as banks call it."""

    wait_time = constant_throughput(RATE)

    def on_start(self) -> None:
        self.sequence = itertools.cycle(Workload.transactions)
        key = os.environ.get("GATEWAY_API_KEY")
        self.headers = {**JSON, **({"X-API-Key": key} if key else {})}

    def _next(self, legacy: bool) -> dict[str, Any]:
        while True:
            transaction = dict(next(self.sequence))
            if ("source" in transaction) == legacy:
                break
        if not legacy:
            transaction["transaction_id"] = uuid.uuid4().hex  # every request a new transaction
        return transaction

    @tag("gateway", "full")
    @task(9)
    def predict_full_transaction(self) -> None:
        self.client.post(
            "/predict",
            data=orjson.dumps(self._next(legacy=False)),
            headers=self.headers,
            name="/predict (full)",
        )

    @tag("gateway", "legacy")
    @task(1)
    def predict_legacy_payload(self) -> None:
        self.client.post(
            "/predict",
            data=orjson.dumps(self._next(legacy=True)),
            headers=self.headers,
            name="/predict (legacy)",
        )


class KServeV2User(FastHttpUser):
    """Open Inference Protocol: FP32 batches of V2_BATCH_ROWS rows, binary (as the gateway sends) and JSON."""

    wait_time = constant_throughput(RATE)

    def on_start(self) -> None:
        self.url = f"/v2/models/{MODEL_NAME}/infer"

    def _rows(self) -> np.ndarray:
        start = random.randrange(0, len(Workload.features) - V2_BATCH_ROWS + 1)
        return Workload.features[start : start + V2_BATCH_ROWS]

    @tag("v2", "binary")
    @task(3)
    def infer_binary(self) -> None:
        from fraudops_bench.predictor import v2_binary_request

        body, headers = v2_binary_request(self._rows())
        self.client.post(self.url, data=body, headers=headers, name="V2 infer (binary)")

    @tag("v2", "json")
    @task(1)
    def infer_json(self) -> None:
        rows = np.nan_to_num(self._rows()[:100], nan=0.0)  # JSON has no NaN
        body = {
            "inputs": [
                {
                    "name": "features",
                    "shape": list(rows.shape),
                    "datatype": "FP32",
                    "data": rows.ravel().tolist(),
                }
            ],
            "parameters": {"reasons": True},
        }
        self.client.post(
            self.url, data=orjson.dumps(body), headers=JSON, name="V2 infer (JSON, 100 rows, reasons)"
        )


class KServeV1User(FastHttpUser):
    """KServe V1: feature rows, and raw transactions scored without history."""

    wait_time = constant_throughput(RATE)

    def on_start(self) -> None:
        self.url = f"/v1/models/{MODEL_NAME}:predict"

    @tag("v1", "features")
    @task(3)
    def predict_feature_rows(self) -> None:
        start = random.randrange(0, len(Workload.features) - 100)
        rows = np.nan_to_num(Workload.features[start : start + 100], nan=0.0)
        self.client.post(
            self.url,
            data=orjson.dumps({"instances": rows.tolist()}),
            headers=JSON,
            name="V1 predict (100 feature rows)",
        )

    @tag("v1", "transactions")
    @task(1)
    def predict_transactions(self) -> None:
        instances = [t for t in random.sample(Workload.transactions, 20) if "source" not in t]
        self.client.post(
            self.url,
            data=orjson.dumps({"instances": instances}),
            headers=JSON,
            name="V1 predict (raw transactions)",
        )
