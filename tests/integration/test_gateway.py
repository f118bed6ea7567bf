"""The real gateway (`fraudops serve gateway`) against real PostgreSQL and a trained artifact.

Every endpoint: decisions (full and legacy payloads, batches), reason codes, stored decisions,
feedback, validation errors, the body limit, health (including a database that refuses
connections), metrics, and the per-customer state shared with the stream consumer; that the
gateway reuses pooled connections, gives nothing internal away, and survives a stored state it
cannot read.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fraudops import statestore
from fraudops.artifact import load_artifact
from fraudops.features.encode import encode_transactions
from fraudops.features.engine import FeatureEngine
from fraudops.features.spec import FEATURE_NAMES, FEATURE_VERSION
from fraudops.schema import TRANSACTION_FIELDS, Transaction
from fraudops.scoring import Scorer
from fraudops_gateway.schemas import FULL_EXAMPLE, LEGACY_EXAMPLE
from fraudops_infra.stack import LocalStack
from tests.integration.test_gateway_support import (
    Served,
    fastapi_only_gateway,
    gateway,
    stored_rows,
    wait_for_readiness,
    wait_until_stored,
)
from tests.waiting import WaitTimedOut, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(
    database: str, trained_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("gateway") / "gateway.log"
    with gateway(database, trained_artifact, log, state_refresh_s="1") as server:
        yield server
        assert server.stop(), f"the gateway did not exit cleanly on SIGTERM:\n{server.log_tail()}"
        assert "Application shutdown complete" in server.log_tail(), server.log_tail()


@pytest.fixture(scope="module")
def first_answer(served: Served) -> dict[str, Any]:
    """The gateway's very first decision after it started."""
    response = httpx.post(
        served.url + "/predict", json={**FULL_EXAMPLE, "transaction_id": "first-" + uuid.uuid4().hex}
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture()
def client(served: Served, first_answer: dict[str, Any]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def scorer(trained_artifact: Path) -> Scorer:
    return Scorer(load_artifact(str(trained_artifact)))


@pytest.fixture(scope="module")
def history(simulated_history: Path) -> pd.DataFrame:
    frame = pd.read_parquet(simulated_history).sort_values("event_time", kind="stable")
    return frame[[c for c in frame.columns if c in TRANSACTION_FIELDS]]


def new_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def transactions_of(frame: pd.DataFrame, prefix: str) -> list[dict[str, Any]]:
    """History rows as API payloads, with customers and ids renamed so no other test shares their state."""
    records = orjson.loads(frame.to_json(orient="records", date_format="iso"))
    payloads = []
    for record in records:
        payload = {k: v for k, v in record.items() if v is not None}
        payload["transaction_id"] = f"{prefix}-{payload['transaction_id']}"
        if "customer_id" in payload:
            payload["customer_id"] = f"{prefix}-{payload['customer_id']}"
        payloads.append(payload)
    return payloads


def metric_samples(text: str) -> dict[str, list]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


# --- decisions ---------------------------------------------------------------------------------------


def test_a_full_transaction_is_decided_and_its_decision_stored(
    client: httpx.Client, database: str, scorer: Scorer
) -> None:
    transaction_id = new_id()

    response = client.post("/predict", json={**FULL_EXAMPLE, "transaction_id": transaction_id})

    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {
        "transaction_id",
        "fraud_probability",
        "is_fraud",
        "threshold",
        "model_version",
        "variant",
        "reasons",
        "prediction_time_ms",
    }
    assert answer["transaction_id"] == transaction_id
    assert answer["variant"] == "stable" and answer["model_version"] == scorer.model_version
    assert answer["threshold"] == pytest.approx(scorer.threshold)
    assert answer["is_fraud"] == (answer["fraud_probability"] >= answer["threshold"])
    wait_until_stored(database, [transaction_id])
    ((score, variant, shadow, source),) = stored_rows(
        database,
        "SELECT score, variant, shadow, source FROM decisions WHERE transaction_id = %s",
        transaction_id,
    )
    assert score == pytest.approx(answer["fraud_probability"], abs=1e-6) and variant == "stable"
    assert not shadow and source == "api"
    ((amount, channel, customer),) = stored_rows(
        database,
        "SELECT amount, channel, customer_id FROM transactions WHERE transaction_id = %s",
        transaction_id,
    )
    assert (float(amount), channel, customer) == (899.0, "WEB", "cust-000123")


def test_a_zero_amount_card_verification_is_decided_and_stored(client: httpx.Client, database: str) -> None:
    transaction_id = new_id()
    response = client.post("/predict", json={**FULL_EXAMPLE, "transaction_id": transaction_id, "amount": 0})

    assert response.status_code == 200, response.text
    wait_until_stored(database, [transaction_id])
    ((amount,),) = stored_rows(
        database, "SELECT amount FROM transactions WHERE transaction_id = %s", transaction_id
    )
    assert float(amount) == 0.0


def test_a_stored_decision_is_served_back_by_transaction_id(client: httpx.Client, database: str) -> None:
    transaction_id = new_id()
    answer = client.post("/predict", json={**FULL_EXAMPLE, "transaction_id": transaction_id}).json()
    wait_until_stored(database, [transaction_id])

    stored = client.get(f"/transactions/{transaction_id}")

    assert stored.status_code == 200, stored.text
    body = stored.json()
    assert body["fraud_probability"] == pytest.approx(answer["fraud_probability"], abs=1e-6)
    assert (body["variant"], body["model_version"], body["source"]) == (
        "stable",
        answer["model_version"],
        "api",
    )
    assert body["shadow_scores"] == {} and body["label"] is None
    assert client.get(f"/transactions/{new_id()}").status_code == 404


def test_the_legacy_payload_is_decided_as_a_normalised_transaction(
    client: httpx.Client, database: str
) -> None:
    response = client.post("/predict", json=LEGACY_EXAMPLE)

    assert response.status_code == 200, response.text
    transaction_id = response.json()["transaction_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", transaction_id), "the gateway gives the legacy payload an id"
    wait_until_stored(database, [transaction_id])
    ((channel, category, hour, amount, international),) = stored_rows(
        database,
        "SELECT channel, merchant_category, hour_of_day, amount, is_international FROM transactions "
        "WHERE transaction_id = %s",
        transaction_id,
    )
    assert (channel, category, hour, float(amount), international) == ("WEB", "electronics", 23, 250.0, False)


def test_explain_gives_reason_codes_named_after_model_features(client: httpx.Client, database: str) -> None:
    transaction_id = new_id()

    answer = client.post(
        "/predict", params={"explain": "true"}, json={**FULL_EXAMPLE, "transaction_id": transaction_id}
    ).json()

    assert answer["reasons"], "explain=true gives reason codes whatever the decision"
    assert all(reason["feature"] in FEATURE_NAMES for reason in answer["reasons"])
    contributions = [reason["contribution"] for reason in answer["reasons"]]
    assert contributions == sorted(contributions, reverse=True) and contributions[-1] > 0
    wait_until_stored(database, [transaction_id])
    ((stored,),) = stored_rows(
        database, "SELECT reasons FROM decisions WHERE transaction_id = %s", transaction_id
    )
    assert stored == answer["reasons"]


def test_a_batch_is_decided_in_order_with_the_features_of_the_offline_engine(
    client: httpx.Client, history: pd.DataFrame, scorer: Scorer
) -> None:
    rows = history.iloc[:2500]
    payloads = transactions_of(rows, "offline")
    offline = FeatureEngine()
    expected = scorer.score(offline.replay(pd.DataFrame(payloads)))

    answers = []
    for start in range(0, len(payloads), 1000):
        response = client.post("/predict/batch", json={"transactions": payloads[start : start + 1000]})
        assert response.status_code == 200, response.text
        answers.extend(response.json()["results"])

    assert [a["transaction_id"] for a in answers] == [p["transaction_id"] for p in payloads]
    np.testing.assert_allclose([a["fraud_probability"] for a in answers], expected, atol=1e-6)
    flagged = [a for a in answers if a["is_fraud"]]
    assert flagged, "some simulated transactions are flagged"
    assert all(a["reasons"] for a in flagged), "every fraud decision carries its reason codes"
    assert not any(a["reasons"] for a in answers if not a["is_fraud"]), "the others only on request"


def test_the_gateway_scores_from_the_customer_state_the_stream_consumer_stored(
    client: httpx.Client, database: str, history: pd.DataFrame, scorer: Scorer
) -> None:
    customer = history["customer_id"].value_counts().index[0]
    own = history[history["customer_id"] == customer]
    payloads = transactions_of(own, "state")
    consumer = FeatureEngine()
    consumer.transform(encode_transactions([Transaction.model_validate(p) for p in payloads[:-1]]))
    state_customer = payloads[-1]["customer_id"]
    with psycopg.connect(database) as conn:
        statestore.save_customers(
            conn,
            "transactions",
            [(customer_id, 0, blob) for customer_id, blob in consumer.export_customers([state_customer])],
        )
    expected = scorer.score(
        consumer.transform(encode_transactions([Transaction.model_validate(payloads[-1])]))
    )

    answer = client.post("/predict", json=payloads[-1]).json()

    assert answer["fraud_probability"] == pytest.approx(float(expected[0]), abs=1e-6)
    fresh = scorer.score(
        FeatureEngine().transform(encode_transactions([Transaction.model_validate(payloads[-1])]))
    )
    assert abs(float(fresh[0]) - float(expected[0])) > 1e-6, (
        "the history changes this score: the test means it"
    )


def test_a_customer_state_the_stream_consumer_stores_later_replaces_the_one_the_gateway_holds(
    client: httpx.Client, database: str, history: pd.DataFrame, scorer: Scorer
) -> None:
    customer = history["customer_id"].value_counts().index[1]
    payloads = transactions_of(history[history["customer_id"] == customer], "later")
    first = client.post("/predict", json=payloads[0])  # the gateway reads (no stored state) and holds it
    assert first.status_code == 200, first.text
    refreshed_before = _counter(client, "fraudops_gateway_state_refreshed_total")
    expected = _checkpoint_all_but_the_last(database, payloads, scorer)

    wait_until(  # the gateway polls every STATE_REFRESH_S (1 s here)
        lambda: _counter(client, "fraudops_gateway_state_refreshed_total") != refreshed_before,
        15,
        "the gateway to re-read the changed state",
        interval_s=0.2,
    )
    answer = client.post("/predict", json=payloads[-1]).json()

    assert answer["fraud_probability"] == pytest.approx(float(expected[0]), abs=1e-6)
    local_only = FeatureEngine()
    local_only.transform(encode_transactions([Transaction.model_validate(payloads[0])]))
    without = scorer.score(
        local_only.transform(encode_transactions([Transaction.model_validate(payloads[-1])]))
    )
    assert abs(float(without[0]) - float(expected[0])) > 1e-6, "the stored history changes this score"


def _counter(client: httpx.Client, name: str) -> float:
    samples = metric_samples(client.get("/metrics").text).get(name.removesuffix("_total"), [])
    return sum(sample.value for sample in samples if sample.name == name)


def test_a_batch_refuses_duplicate_ids_and_more_than_the_maximum(client: httpx.Client) -> None:
    duplicate = {**FULL_EXAMPLE, "transaction_id": new_id()}
    too_many = [{**LEGACY_EXAMPLE} for _ in range(1001)]

    same_id = client.post("/predict/batch", json={"transactions": [duplicate, duplicate]})
    oversized = client.post("/predict/batch", json={"transactions": too_many})

    assert same_id.status_code == 422 and same_id.json()["errors"][0]["field"] == "transactions"
    assert "unique" in same_id.json()["errors"][0]["reason"]
    assert oversized.status_code == 422 and "at most 1000" in oversized.json()["errors"][0]["reason"]


# --- feedback ------------------------------------------------------------------------------------------


def test_feedback_stores_the_label_with_the_time_it_became_known_once(
    client: httpx.Client, database: str
) -> None:
    # keys of its own: a confirmed fraud feeds the label-risk features of its merchant, device, …
    transaction_id = new_id("fb")
    keys = {
        "customer_id": new_id("fbc"),
        "merchant_id": new_id("fbm"),
        "device_id": new_id("fbd"),
        "ip_address": "198.51.100.77",
        "card_id": new_id("fbk"),
    }
    client.post("/predict", json={**FULL_EXAMPLE, **keys, "transaction_id": transaction_id})
    label = {
        "transaction_id": transaction_id,
        "is_fraud": True,
        "label_known_at": "2026-12-05T09:30:00+01:00",
        "source": "chargeback",
    }

    first = client.post("/feedback", json=label)  # right after the decision: the gateway waits until stored
    again = client.post("/feedback", json=label)

    assert first.status_code == 200, first.text
    assert first.json()["stored"] is True and again.json()["stored"] is False
    assert first.json()["label_known_at"] == "2026-12-05T08:30:00Z"
    ((is_fraud, known_at, source),) = stored_rows(
        database,
        "SELECT is_fraud, label_known_at, source FROM feedback_labels WHERE transaction_id = %s",
        transaction_id,
    )
    assert is_fraud and source == "chargeback" and known_at.isoformat() == "2026-12-05T08:30:00+00:00"
    assert client.get(f"/transactions/{transaction_id}").json()["label"] is True


def test_feedback_for_an_unknown_transaction_is_404(client: httpx.Client) -> None:
    response = client.post("/feedback", json={"transaction_id": new_id(), "is_fraud": False})

    assert response.status_code == 404
    assert "unknown" in response.json()["error"]


# --- bad input ------------------------------------------------------------------------------------------


def _full(**changes: Any) -> dict[str, Any]:
    return {**FULL_EXAMPLE, "transaction_id": new_id(), **changes}


@pytest.mark.parametrize(
    ("path", "body", "field", "rule"),
    [
        ("/predict", _full(amount=-12.5), "amount", "never negative; a refund is transaction_type REFUND"),
        ("/predict", _full(amount=0.001), "amount", "fraction of a cent"),
        ("/predict", _full(amount="12.50"), "amount", "valid number"),
        ("/predict", _full(channel="TELEPATHY"), "channel", "'MOBILE_APP', 'WEB', 'POS'"),
        ("/predict", _full(event_time="yesterday"), "event_time", "must be an RFC 3339 date-time"),
        ("/predict", _full(event_time="2026-13-01T00:00:00Z"), "event_time", "must be an RFC 3339 date-time"),
        ("/predict", _full(event_time="2026-02-30T00:00:00Z"), "event_time", "day is out of range for month"),
        ("/predict", _full(event_time="2026-11-28T21:14:05"), "event_time", "with a UTC offset"),
        ("/predict", _full(event_time="2026-11-28T21:14:05-19:26"), "event_time", "offset of at most 15:59"),
        ("/predict", _full(event_time="1700000000"), "event_time", "must be an RFC 3339 date-time"),
        ("/predict", _full(event_time="2030-01-01T00:00:00Z"), "event_time", "more than a day in the future"),
        (
            "/predict",
            _full(event_time="1969-07-20T20:17:40Z"),
            "event_time",
            "year (as written) from 1970 to 2199",
        ),
        (
            "/predict",
            _full(account_opened_at="2200-01-01T00:00:00Z"),
            "account_opened_at",
            "from 1970 to 2199",
        ),
        ("/predict", _full(latitude=52.5), "longitude", "latitude and longitude must be given together"),
        ("/predict", _full(ip_address="10.0.0.1\u0000"), "ip_address", "should match pattern"),
        ("/predict", _full(colour="red"), "colour", "Extra inputs are not permitted"),
        (
            "/predict",
            {k: v for k, v in LEGACY_EXAMPLE.items() if k != "hour_of_day"},
            "hour_of_day",
            "Field required",
        ),
        ("/predict", {**LEGACY_EXAMPLE, "hour_of_day": 24}, "hour_of_day", "less than or equal to 23"),
        (
            "/predict/batch",
            {"transactions": [LEGACY_EXAMPLE, {**LEGACY_EXAMPLE, "amount": -1}]},
            "transactions.1.amount",
            "never negative",
        ),
        ("/predict/batch", {"transactions": []}, "transactions", "at least 1 item"),
        ("/feedback", {"transaction_id": "x", "is_fraud": "yes"}, "is_fraud", "valid boolean"),
        (
            "/feedback",
            {"transaction_id": "x", "is_fraud": True, "label_known_at": 0},
            "label_known_at",
            "valid datetime",
        ),
    ],
)
def test_invalid_input_gets_422_naming_the_field_and_the_rule(
    client: httpx.Client, path: str, body: dict, field: str, rule: str
) -> None:
    response = client.post(path, json=body)

    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert any(error["field"] == field and rule in error["reason"] for error in errors), errors


@pytest.mark.parametrize(
    ("raw", "field", "rule"),
    [
        (b'{"amount": NaN}', "amount", "finite number"),
        (b'{"amount": 1e999}', "amount", "finite number"),
        (b'{"amount": Infinity, "channel": "WEB"}', "amount", "finite number"),
        (b'{"amount": 12.5,', "body", "invalid JSON"),
        (b"", "body", "invalid JSON"),
    ],
)
def test_non_finite_numbers_and_broken_json_get_422(
    client: httpx.Client, raw: bytes, field: str, rule: str
) -> None:
    response = client.post("/predict", content=raw, headers={"Content-Type": "application/json"})

    assert response.status_code == 422, response.text
    assert any(e["field"] == field and rule in e["reason"] for e in response.json()["errors"]), response.text


def test_a_body_that_is_not_json_or_a_bad_query_or_path_gets_422(client: httpx.Client) -> None:
    form = client.post(
        "/predict", content=b"amount=12", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    flag = client.post("/predict", params={"explain": "perhaps"}, json=_full())
    path = client.get("/transactions/not a valid id!")

    assert form.status_code == 422 and form.json()["errors"][0]["field"] == "body"
    assert flag.status_code == 422 and flag.json()["errors"][0]["field"] == "explain"
    assert path.status_code == 422 and path.json()["errors"][0]["field"] == "transaction_id"


@pytest.mark.parametrize("path", ["/predict", "/predict/batch", "/feedback"])
def test_a_body_over_the_limit_gets_413(client: httpx.Client, path: str) -> None:
    oversized = b'{"padding": "' + b"x" * 1_100_000 + b'"}'

    declared = client.post(path, content=oversized, headers={"Content-Type": "application/json"})
    chunked = client.post(
        path,
        content=iter([oversized[i : i + 65536] for i in range(0, len(oversized), 65536)]),
        headers={"Content-Type": "application/json"},
    )

    for response in (declared, chunked):
        assert response.status_code == 413, response.text
        assert "exceeds the limit of 1048576 bytes" in response.json()["error"]


# --- operations -------------------------------------------------------------------------------------


def test_the_first_decision_after_start_does_not_pay_for_warm_up(first_answer: dict[str, Any]) -> None:
    assert first_answer["prediction_time_ms"] < 50, "JIT compilation or a first booster call hit a client"


def test_metrics_count_requests_latency_decisions_and_scores_per_variant(client: httpx.Client) -> None:
    for _ in range(3):
        client.post("/predict", json=_full())
    client.post("/predict", json=_full(amount=-1))

    samples = metric_samples(client.get("/metrics").text)

    def value(family: str, suffix: str = "", **labels: str) -> float:
        return sum(
            s.value
            for s in samples[family]
            if s.name == family + suffix and all(s.labels.get(k) == v for k, v in labels.items())
        )

    assert value("fraudops_gateway_requests", "_total", route="/predict", method="POST", status="200") >= 3
    assert value("fraudops_gateway_requests", "_total", route="/predict", method="POST", status="422") >= 1
    assert value("fraudops_gateway_request_seconds", "_count", route="/predict") >= 4
    assert value("fraudops_gateway_rejected", "_total", reason="invalid") >= 1
    decided = value("fraudops_decisions", "_total", source="api", variant="stable", shadow="false")
    assert decided >= 3
    assert value("fraudops_score", "_count", source="api", variant="stable", shadow="false") == decided
    assert value("fraudops_gateway_persisted", "_total") >= 1
    assert "fraudops_gateway_persist_queue" in samples


def test_health_live_and_ready(client: httpx.Client) -> None:
    live = client.get("/health/live")
    ready = client.get("/health/ready")

    assert live.status_code == 200 and live.json()["status"] == "ok"
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "model": "loaded",
        "routing": "stable:serve:100",
        "database": "reachable",
        "background": "running",
    }


def test_ready_is_503_while_the_database_refuses_connections_and_no_decision_is_lost(
    client: httpx.Client, database: str, local_stack: LocalStack
) -> None:
    name = database.rsplit("/", 1)[1]
    admin = local_stack.postgres.url.rsplit("/", 1)[0] + "/postgres"
    decided: list[str] = []
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            ready = wait_for_readiness(client, 503)
            live = client.get("/health/live")
            for _ in range(5):  # decisions go on, from the state the gateway holds; they wait in the queue
                response = client.post("/predict", json=_full())
                assert response.status_code == 200, response.text
                decided.append(response.json()["transaction_id"])
            waiting = [client.get(f"/transactions/{transaction_id}") for transaction_id in decided]
            unknown = client.get(f"/transactions/{new_id()}")  # not pending: needs the database
            queue = metric_samples(client.get("/metrics").text)["fraudops_gateway_persist_queue"][0].value
        finally:
            conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")

    assert ready.json()["status"] == "unavailable" and ready.json()["checks"]["database"] == "unreachable"
    assert live.status_code == 200, "alive, just not ready"
    assert all(r.status_code == 200 for r in waiting), "answered decisions are served while they wait"
    assert unknown.status_code == 503 and unknown.headers["retry-after"] == "1"
    for leak in (name, "FATAL", "connection", "127.0.0.1", "psycopg"):
        assert leak not in ready.text and leak not in unknown.text, f"{leak!r} given away: {unknown.text}"
    assert queue >= 1, "the decisions wait in the queue while the database is away"
    wait_until_stored(database, decided)
    wait_for_readiness(client, 200)


def _sessions_settled(admin: str, name: str, timeout_s: float = 10) -> int:
    """Sessions ever opened on database `name`, once PostgreSQL's statistics stop moving (or as they
    stand after `timeout_s`: the caller's assertion judges that reading)."""
    seen: list[int] = []
    with psycopg.connect(admin, autocommit=True) as conn:

        def settled() -> bool:
            row = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (name,)).fetchone()
            seen.append(row[0])
            return len(seen) >= 4 and len(set(seen[-4:])) == 1

        with contextlib.suppress(WaitTimedOut):
            wait_until(settled, timeout_s, "PostgreSQL's session statistics to settle")
    return seen[-1]


def test_probes_lookups_and_feedback_reuse_the_pools_connections(
    client: httpx.Client, database: str, local_stack: LocalStack
) -> None:
    name = database.rsplit("/", 1)[1]
    admin = local_stack.postgres.url.rsplit("/", 1)[0] + "/postgres"
    decided = [client.post("/predict", json=_full()).json()["transaction_id"] for _ in range(5)]
    wait_until_stored(database, decided)
    before = _sessions_settled(admin, name)

    probes = [client.get("/health/ready").status_code for _ in range(20)]
    lookups = [client.get(f"/transactions/{transaction_id}").status_code for transaction_id in decided * 4]
    labels = [
        client.post("/feedback", json={"transaction_id": transaction_id, "is_fraud": False}).status_code
        for transaction_id in decided
    ]

    assert set(probes) == set(lookups) == set(labels) == {200}
    opened = _sessions_settled(admin, name) - before
    assert opened < 8, f"{opened} new database sessions for 45 requests: connections are not pooled"


def _checkpoint_all_but_the_last(database: str, payloads: list[dict[str, Any]], scorer: Scorer) -> np.ndarray:
    """Store the state a stream consumer that saw all but the last of `payloads` checkpoints for their
    customer; return the score that history gives the last one."""
    consumer = FeatureEngine()
    consumer.transform(encode_transactions([Transaction.model_validate(p) for p in payloads[:-1]]))
    with psycopg.connect(database) as conn:
        statestore.save_customers(
            conn,
            "transactions",
            [
                (customer_id, 0, blob)
                for customer_id, blob in consumer.export_customers([payloads[-1]["customer_id"]])
            ],
        )
    return scorer.score(consumer.transform(encode_transactions([Transaction.model_validate(payloads[-1])])))


def test_a_stored_state_the_gateway_cannot_read_is_reported_and_stalls_no_other_customer(
    client: httpx.Client, served: Served, database: str, history: pd.DataFrame, scorer: Scorer
) -> None:
    unreadable, queued_behind = new_id("unreadable"), new_id("queued")
    customer = history["customer_id"].value_counts().index[2]
    payloads = transactions_of(history[history["customer_id"] == customer], "after-unreadable")
    expected = _checkpoint_all_but_the_last(database, payloads, scorer)
    with psycopg.connect(database) as conn:
        conn.execute(
            """INSERT INTO customer_feature_state (customer_id, topic, partition, feature_version, state)
                        VALUES (%s, 'transactions', 0, %s, %s)""",
            (unreadable, FEATURE_VERSION, b"not a state"),
        )
    refused_before = _counter(client, "fraudops_gateway_state_refused_total")

    with psycopg.connect(
        database
    ) as lock:  # hold the gateway's state read of `unreadable` until both are asked
        lock.execute("LOCK TABLE customer_feature_state IN ACCESS EXCLUSIVE MODE")
        first = client.post("/predict", json=_full(customer_id=unreadable))  # answered from local state
        second = client.post("/predict", json=_full(customer_id=queued_behind))  # its read queued behind
    answer = client.post("/predict", json=payloads[-1])  # a customer seen after the unreadable state

    assert first.status_code == second.status_code == answer.status_code == 200
    assert answer.json()["fraud_probability"] == pytest.approx(float(expected[0]), abs=1e-6), (
        "the stored state of a customer seen later was read: the reads did not stall"
    )
    assert _counter(client, "fraudops_gateway_state_refused_total") == refused_before + 1
    assert unreadable in served.log_tail(20_000)
    assert client.get("/health/ready").status_code == 200


def test_the_fastapi_routes_answer_exactly_like_the_fast_path_in_front_of_them(
    client: httpx.Client, database: str, trained_artifact: Path, tmp_path: Path
) -> None:
    """`create_app` alone (no fast path) serves /predict and /predict/batch through FastAPI: same contract."""
    bodies: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        ("/predict", LEGACY_EXAMPLE, {"explain": "true"}),
        ("/predict", {**LEGACY_EXAMPLE, "amount": -1}, {}),
        ("/predict", _full(channel="TELEPATHY", event_time="yesterday"), {}),
        ("/predict", LEGACY_EXAMPLE, {"explain": "perhaps"}),
        ("/predict/batch", {"transactions": [LEGACY_EXAMPLE, {**LEGACY_EXAMPLE, "hour_of_day": 99}]}, {}),
        ("/predict/batch", {"transactions": [LEGACY_EXAMPLE, LEGACY_EXAMPLE]}, {}),
    ]
    with fastapi_only_gateway(database, trained_artifact, tmp_path / "fastapi.log") as fastapi_only:
        for path, body, params in bodies:
            fast = client.post(path, json=body, params=params)
            routed = httpx.post(fastapi_only.url + path, json=body, params=params, timeout=30)

            assert fast.status_code == routed.status_code, (path, body, fast.text, routed.text)
            if fast.status_code != 200:
                assert fast.json() == routed.json()
                continue
            answers = [fast.json()] if path == "/predict" else fast.json()["results"]
            others = [routed.json()] if path == "/predict" else routed.json()["results"]
            for ours, theirs in zip(answers, others, strict=True):
                assert set(ours) == set(theirs)
                assert ours["fraud_probability"] == pytest.approx(theirs["fraud_probability"], abs=1e-6)
                assert ours["reasons"] == theirs["reasons"]
