"""The extra-columns round trip: train → artifact → gateway, stream consumer and predictor, with the same
extra fields.

A model trained on a bank's own columns (`bank_history`: an MCC-like category spelled in any case, and
the customer's age; both sometimes missing) is served by the real gateway (scoring in-process, and
through a KServe predictor), the real stream consumer and the predictor. The same transactions go
every way, and every score must equal the offline model's score on the same rows — training's own
encoding of the columns (`ExtraInputs.encode_frame`) and XGBoost's own prediction. The same rows with
the extra fields changed must score differently (so the fields really reach the model), and what is
stored must encode back to what the model was given (a replay, a retraining).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import psycopg
import pytest
import xgboost as xgb

from fraudops.artifact import load_artifact
from fraudops.extras import ExtraInputs
from fraudops.features.encode import encode_transactions
from fraudops.features.engine import FeatureEngine
from fraudops.features.spec import FEATURE_NAMES, FeatureConfig
from fraudops.inference_protocol import decode_v2_response, extras_tensors, v2_binary_request
from fraudops.schema import TRANSACTION_FIELDS, Transaction
from fraudops_infra.stack import LocalStack
from tests.conftest import BANK_CATEGORICAL, BANK_NUMERIC
from tests.integration.streaming import produce, read_topic, stop, stream_test, wait_for_count
from tests.integration.test_gateway_support import (
    MODEL_NAME,
    Served,
    gateway,
    predictor,
    stored_rows,
    variant,
    wait_until_stored,
    write_routing_table,
)

pytestmark = pytest.mark.integration
EXTRAS = (BANK_NUMERIC, BANK_CATEGORICAL)
ROWS = 1500
#: The compiled trees that score in the services equal XGBoost's own scores within this (scoring.py).
SAME_SCORE = 1e-6


@pytest.fixture(scope="module")
def rows(bank_history: Path) -> pd.DataFrame:
    """Transactions from the middle of the history: their built-in fields and the two extra columns."""
    frame = pd.read_parquet(bank_history).sort_values("event_time", kind="stable")
    kept = [c for c in frame.columns if c in TRANSACTION_FIELDS or c in EXTRAS]
    return frame[kept].iloc[40_000 : 40_000 + ROWS].reset_index(drop=True)


def renamed(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """The rows with ids and customers of their own, so no other test shares their state."""
    return frame.assign(
        transaction_id=prefix + "-" + frame["transaction_id"].astype(str),
        customer_id=prefix + "-" + frame["customer_id"].astype(str),
    )


def payloads(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as API payloads (and stream records): extra fields in `extras`, a missing one left out
    or sent as null, in turn."""
    out = []
    records = orjson.loads(frame.to_json(orient="records", date_format="iso"))
    for i, record in enumerate(records):
        payload = {k: v for k, v in record.items() if v is not None and k not in EXTRAS}
        payload["extras"] = {name: record[name] for name in EXTRAS if record[name] is not None or i % 2 == 0}
        out.append(payload)
    return out


def offline_scores(artifact: Path, frame: pd.DataFrame) -> np.ndarray:
    """The offline model on these rows: training's features and extra-column encoding, XGBoost's scores."""
    loaded = load_artifact(str(artifact))
    engine = FeatureEngine(FeatureConfig.from_dict(loaded.metadata.feature_config))
    built_in = engine.replay(frame[[c for c in frame.columns if c in TRANSACTION_FIELDS]])
    extra = ExtraInputs.from_dict(loaded.metadata.extra_inputs).encode_frame(frame)
    rows = np.hstack([built_in, extra])
    return loaded.booster.predict(xgb.DMatrix(rows, missing=np.nan))


def changed(frame: pd.DataFrame) -> pd.DataFrame:
    """The same transactions with their extra fields changed the way the model notices most."""
    return frame.assign(**{BANK_CATEGORICAL: " CRYPTO", BANK_NUMERIC: 88.0})


def decide(client: httpx.Client, batch: list[dict[str, Any]]) -> np.ndarray:
    scores = []
    for start in range(0, len(batch), 500):
        response = client.post("/predict/batch", json={"transactions": batch[start : start + 500]})
        assert response.status_code == 200, response.text
        scores += [answer["fraud_probability"] for answer in response.json()["results"]]
    return np.asarray(scores)


def assert_the_fields_reach_the_model(original: np.ndarray, altered: np.ndarray) -> None:
    moved = np.abs(altered - original) > 1e-3
    assert moved.mean() > 0.5, f"changing the extra fields moved only {moved.mean():.0%} of the scores"


# --- the gateway --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(
    database: str, extras_trained_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """A client of the gateway serving the model with extra inputs (which must stop cleanly at the end)."""
    log = tmp_path_factory.mktemp("gateway") / "gateway.log"
    with (
        gateway(database, extras_trained_artifact, log) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        yield http
        assert server.stop(), server.log_tail()


def test_the_gateway_scores_extra_fields_as_the_offline_model_and_stores_them_as_sent(
    client: httpx.Client, database: str, rows: pd.DataFrame, extras_trained_artifact: Path
) -> None:
    frame, other = renamed(rows, "gw"), renamed(changed(rows), "gw-changed")
    sent = payloads(frame)

    scores = decide(client, sent)
    altered = decide(client, payloads(other))

    np.testing.assert_allclose(scores, offline_scores(extras_trained_artifact, frame), atol=SAME_SCORE)
    np.testing.assert_allclose(altered, offline_scores(extras_trained_artifact, other), atol=SAME_SCORE)
    assert_the_fields_reach_the_model(scores, altered)
    ids = [p["transaction_id"] for p in sent]
    wait_until_stored(database, ids)
    stored = dict(
        stored_rows(
            database, "SELECT transaction_id, extras FROM transactions WHERE transaction_id = ANY(%s)", ids
        )
    )
    assert [stored[p["transaction_id"]] for p in sent] == [p["extras"] for p in sent], "stored as sent"
    # a retraining on the stored transactions encodes their extras as this model was given them
    back = pd.DataFrame([stored[p["transaction_id"]] for p in sent], columns=list(EXTRAS))
    extras = ExtraInputs.from_dict(load_artifact(str(extras_trained_artifact)).metadata.extra_inputs)
    np.testing.assert_array_equal(extras.encode_frame(back), extras.encode_frame(frame))


def test_the_gateways_document_names_each_extra_field_with_its_kind(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    extras = document["components"]["schemas"]["TransactionRequest"]["properties"]["extras"]
    declared = extras["anyOf"][0]["properties"]

    assert declared[BANK_NUMERIC]["anyOf"][0]["type"] == "number"
    assert declared[BANK_CATEGORICAL]["anyOf"][0]["type"] == "string"
    assert extras["anyOf"][0]["additionalProperties"], "other fields are taken and stored too"


@pytest.mark.parametrize(
    ("extras", "field", "rule"),
    [
        ({BANK_CATEGORICAL: 5411}, "extras.mcc", "must be text or null: mcc is a categorical model input"),
        ({BANK_NUMERIC: "old"}, "extras.customer_age", "must be a number or null"),
        ({BANK_NUMERIC: 1e39}, "extras.customer_age", "finite number of at most 3.4e38"),
        ({BANK_NUMERIC: True}, "extras.customer_age", "must be text, a number or null, not bool"),
        ({BANK_CATEGORICAL: "54\x0011"}, "extras.mcc", "control characters"),
        ({BANK_CATEGORICAL: "m" * 129}, "extras.mcc", "at most 128 characters"),
        ({"pos entry": "chip"}, "extras.pos entry.[key]", "letters, digits and underscores"),
        ({f"f{i}": 1 for i in range(33)}, "extras", "at most 32 items"),
    ],
)
def test_an_invalid_extra_field_gets_422_naming_the_field_and_the_rule(
    client: httpx.Client, rows: pd.DataFrame, extras: dict[str, Any], field: str, rule: str
) -> None:
    payload = {**payloads(renamed(rows.head(1), "bad"))[0], "extras": extras}

    single = client.post("/predict", json=payload)
    batch = client.post("/predict/batch", json={"transactions": [{"amount": 1.0}, payload]})

    assert single.status_code == 422, single.text
    assert any(e["field"] == field and rule in e["reason"] for e in single.json()["errors"]), single.text
    assert batch.status_code == 422, batch.text
    assert any(e["field"] == f"transactions.1.{field}" for e in batch.json()["errors"]), batch.text


def test_an_extra_field_no_model_reads_is_taken_and_stored(client: httpx.Client, database: str) -> None:
    response = client.post(
        "/predict",
        json={"transaction_id": "unread-extra", "amount": 5.0, "extras": {"terminal_country": "DE"}},
    )

    assert response.status_code == 200, response.text
    wait_until_stored(database, ["unread-extra"])
    assert stored_rows(database, "SELECT extras FROM transactions WHERE transaction_id = 'unread-extra'") == [
        ({"terminal_country": "DE"},)
    ]


# --- the stream consumer --------------------------------------------------------------------------------


def test_the_stream_scores_extra_fields_as_the_offline_model_and_dead_letters_wrong_kinds(
    local_stack: LocalStack,
    scratch_database: str,
    rows: pd.DataFrame,
    extras_trained_artifact: Path,
    tmp_path: Path,
) -> None:
    frame = renamed(rows, "st")
    records = payloads(frame)
    wrong = [
        {**records[0], "transaction_id": "wrong-mcc", "extras": {BANK_CATEGORICAL: 5411}},
        {**records[1], "transaction_id": "wrong-age", "extras": {BANK_NUMERIC: "41"}},
    ]

    with stream_test(local_stack, scratch_database, extras_trained_artifact, tmp_path) as stream_setup:
        produce(
            stream_setup.bootstrap,
            stream_setup.topic,
            [(r["customer_id"], orjson.dumps(r)) for r in [*records, *wrong]],
        )
        consumer = stream_setup.consumer("extras")
        try:
            assert wait_for_count(stream_setup.db_url, len(records), 240, [consumer]) == len(records)
        finally:
            stop(consumer)

    with psycopg.connect(stream_setup.db_url) as conn:
        scored = dict(conn.execute("SELECT transaction_id, score FROM decisions WHERE NOT shadow").fetchall())
        stored = dict(conn.execute("SELECT transaction_id, extras FROM transactions").fetchall())
    expected = offline_scores(extras_trained_artifact, frame)
    np.testing.assert_allclose([scored[r["transaction_id"]] for r in records], expected, atol=SAME_SCORE)
    assert [stored[r["transaction_id"]] for r in records] == [r["extras"] for r in records]
    dead = read_topic(stream_setup.bootstrap, stream_setup.dlq, len(wrong))
    reasons = {
        h["dlq.field"]: h["dlq.reason"] for h in ({k: v.decode() for k, v in m.headers()} for m in dead)
    }
    assert sorted(reasons) == ["extras.customer_age", "extras.mcc"]
    assert reasons["extras.mcc"] == "extras.mcc: must be text or null: mcc is a categorical model input"


# --- the KServe predictor, and the gateway scoring through it ---------------------------------------------


@pytest.fixture(scope="module")
def remote(extras_trained_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with predictor(extras_trained_artifact, tmp_path_factory.mktemp("predictor") / "predictor.log") as server:
        yield server
        assert server.stop(), server.log_tail()


def test_the_predictor_takes_raw_extra_fields_in_v1_transactions_and_beside_v2_features(
    remote: Served, rows: pd.DataFrame, extras_trained_artifact: Path
) -> None:
    frame = renamed(rows, "kserve")
    sent = payloads(frame)
    loaded = load_artifact(str(extras_trained_artifact))
    engine = FeatureEngine(FeatureConfig.from_dict(loaded.metadata.feature_config))
    built_in = engine.replay(frame[[c for c in frame.columns if c in TRANSACTION_FIELDS]])
    extras = ExtraInputs.from_dict(loaded.metadata.extra_inputs)
    # V2: the built-in features and the raw extra fields beside them, encoded by the model server
    content, headers = v2_binary_request(
        built_in, binary_scores=True, extras=extras_tensors(extras.fields, [p["extras"] for p in sent])
    )
    v2 = httpx.post(
        f"{remote.url}/v2/models/{MODEL_NAME}/infer", content=content, headers=headers, timeout=60
    )
    # V1: raw transactions, featurised without history, their extras included
    head = sent[:20]
    v1 = httpx.post(f"{remote.url}/v1/models/{MODEL_NAME}:predict", json={"instances": head}, timeout=60)
    wrong = httpx.post(
        f"{remote.url}/v1/models/{MODEL_NAME}:predict",
        json={"instances": [{**head[0], "extras": {BANK_CATEGORICAL: 7995}}]},
        timeout=60,
    )

    assert v2.status_code == 200, v2.text
    v2_scores = decode_v2_response(v2)["outputs"]["fraud_probability"]
    np.testing.assert_allclose(v2_scores, offline_scores(extras_trained_artifact, frame), atol=SAME_SCORE)
    assert v1.status_code == 200, v1.text
    fresh = FeatureEngine().transform(encode_transactions([Transaction.model_validate(p) for p in head]))
    expected = loaded.booster.predict(
        xgb.DMatrix(np.hstack([fresh, extras.encode_frame(frame.head(20))]), missing=np.nan)
    )
    np.testing.assert_allclose(v1.json()["predictions"], expected, atol=SAME_SCORE)
    assert wrong.status_code == 400 and "extras.mcc: must be text or null" in wrong.text, wrong.text
    metadata = httpx.get(f"{remote.url}/v2/models/{MODEL_NAME}", timeout=30).json()
    inputs = {t["name"]: t for t in metadata["inputs"]}
    assert inputs["features"]["shape"] == [-1, len(FEATURE_NAMES) + 2]
    assert inputs["extras.mcc"]["datatype"] == "BYTES" and inputs["extras.customer_age"]["datatype"] == "FP32"


def test_a_gateway_scoring_through_the_predictor_gives_the_offline_models_scores(
    remote: Served,
    database: str,
    rows: pd.DataFrame,
    extras_trained_artifact: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    folder = tmp_path_factory.mktemp("remote-gateway")
    table = folder / "routing.yaml"
    write_routing_table(table, [variant("stable", endpoint=remote.url)])
    frame, other = renamed(rows, "rm"), renamed(changed(rows), "rm-changed")

    with (
        gateway(
            database, extras_trained_artifact, folder / "gateway.log", routing_table_path=str(table)
        ) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        scores = decide(http, payloads(frame))
        altered = decide(http, payloads(other))
        refused = http.post("/predict", json={"amount": 1.0, "extras": {BANK_NUMERIC: "old"}})
        assert server.stop(), server.log_tail()

    np.testing.assert_allclose(scores, offline_scores(extras_trained_artifact, frame), atol=SAME_SCORE)
    np.testing.assert_allclose(altered, offline_scores(extras_trained_artifact, other), atol=SAME_SCORE)
    assert_the_fields_reach_the_model(scores, altered)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "extras.customer_age"
