"""The real KServe model server (`fraudops serve predictor`) against a trained artifact, over V1 and V2.

Every score is checked against the artifact scored in this process; reason codes against XGBoost's
own TreeSHAP. Binary V2 is the Open Inference Protocol's binary tensor extension, as the gateway
sends it.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
import xgboost as xgb
from prometheus_client.parser import text_string_to_metric_families

from fraudops.artifact import load_artifact
from fraudops.features.encode import encode_transactions
from fraudops.features.engine import FeatureEngine
from fraudops.features.spec import FEATURE_NAMES
from fraudops.inference_protocol import v2_binary_request
from fraudops.schema import TRANSACTION_FIELDS, Transaction
from fraudops.scoring import Scorer
from tests.integration.test_gateway_support import MODEL_NAME, Served, predictor

pytestmark = pytest.mark.integration
V2 = f"/v2/models/{MODEL_NAME}"
V1 = f"/v1/models/{MODEL_NAME}:predict"


@pytest.fixture(scope="module")
def served(
    trained_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Served, float]]:
    """The predictor, and how long its very first inference took (after readiness)."""
    log = tmp_path_factory.mktemp("predictor") / "predictor.log"
    with predictor(trained_artifact, log) as server:
        started = time.perf_counter()
        zeros = np.zeros((1, len(FEATURE_NAMES)), dtype=np.float32)
        first = httpx.post(server.url + V2 + "/infer", json=_v2_json(zeros, reasons=True), timeout=30)
        first_s = time.perf_counter() - started
        assert first.status_code == 200, first.text
        yield server, first_s
        assert server.stop(), f"the predictor did not exit cleanly on SIGTERM:\n{server.log_tail()}"


@pytest.fixture(scope="module")
def url(served: tuple[Served, float]) -> str:
    return served[0].url


@pytest.fixture(scope="module")
def scorer(trained_artifact: Path) -> Scorer:
    return Scorer(load_artifact(str(trained_artifact)))


@pytest.fixture(scope="module")
def history_rows(simulated_history: Path) -> pd.DataFrame:
    return pd.read_parquet(simulated_history).sort_values("event_time", kind="stable").head(3000)


@pytest.fixture(scope="module")
def feature_rows(history_rows: pd.DataFrame) -> np.ndarray:
    """Real feature rows (with missing values) from replaying simulated history."""
    columns = [c for c in history_rows.columns if c in TRANSACTION_FIELDS]
    return FeatureEngine().replay(history_rows[columns])[-1000:]


def _v2_json(features: np.ndarray, **parameters: object) -> dict:
    """A V2 JSON request (JSON has no NaN: callers send rows without missing values)."""
    return {
        "id": "test",
        "inputs": [
            {
                "name": "features",
                "shape": list(features.shape),
                "datatype": "FP32",
                "data": features.ravel().tolist(),
            }
        ],
        "parameters": parameters,
    }


def _v2_binary(client: httpx.Client, url: str, features: np.ndarray, **parameters: object) -> httpx.Response:
    content, headers = v2_binary_request(features, parameters, binary_scores=True)
    return client.post(url + V2 + "/infer", content=content, headers=headers)


def _scores_from_json(body: dict) -> np.ndarray:
    output = next(o for o in body["outputs"] if o["name"] == "fraud_probability")
    return np.asarray(output["data"], dtype=np.float32)


def test_v2_model_metadata_lists_every_feature_name_in_column_order(url: str) -> None:
    metadata = httpx.get(url + V2).json()

    inputs = {tensor["name"]: tensor for tensor in metadata["inputs"]}
    assert inputs["features"] == {"name": "features", "datatype": "FP32", "shape": [-1, len(FEATURE_NAMES)]}
    assert [t["name"] for t in metadata["inputs"][1:]] == list(FEATURE_NAMES)
    assert {t["name"] for t in metadata["outputs"]} == {"fraud_probability", "reasons"}


def test_v2_and_server_health_endpoints_answer_ready(url: str) -> None:
    assert httpx.get(url + "/v2/health/live").json() == {"live": True}
    assert httpx.get(url + "/v2/health/ready").json() == {"ready": True}
    assert httpx.get(url + V2 + "/ready").json() == {"name": MODEL_NAME, "ready": True}
    assert MODEL_NAME in httpx.get(url + "/v2/models").json()["models"]


def test_v2_json_round_trip_scores_like_the_artifact(
    url: str, scorer: Scorer, feature_rows: np.ndarray
) -> None:
    rows = np.nan_to_num(feature_rows[:200], nan=0.0).astype(np.float32)  # JSON has no NaN

    response = httpx.post(url + V2 + "/infer", json=_v2_json(rows))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "test" and body["model_name"] == MODEL_NAME
    assert body["parameters"] == {"model_version": scorer.model_version, "threshold": scorer.threshold}
    np.testing.assert_allclose(_scores_from_json(body), scorer.score(rows), atol=1e-6)


def test_v2_binary_round_trip_keeps_missing_values_and_scores_like_the_artifact(
    url: str, scorer: Scorer, feature_rows: np.ndarray
) -> None:
    assert np.isnan(feature_rows).any(), "the rows exercise missing values"
    with httpx.Client() as client:
        response = _v2_binary(client, url, feature_rows)

    assert response.status_code == 200, response.text
    header_length = int(response.headers["inference-header-content-length"])
    header = orjson.loads(response.content[:header_length])
    (output,) = header["outputs"]
    assert output["parameters"]["binary_data_size"] == 4 * len(feature_rows)
    scores = np.frombuffer(response.content[header_length:], dtype=np.float32)
    np.testing.assert_allclose(scores, scorer.score(feature_rows), atol=1e-6)


def test_v2_accepts_one_input_per_feature(url: str, scorer: Scorer, feature_rows: np.ndarray) -> None:
    rows = np.nan_to_num(feature_rows[:20], nan=0.0).astype(np.float32)
    inputs = [
        {"name": name, "shape": [len(rows)], "datatype": "FP32", "data": rows[:, i].tolist()}
        for i, name in enumerate(FEATURE_NAMES)
    ]

    response = httpx.post(url + V2 + "/infer", json={"inputs": inputs})

    assert response.status_code == 200, response.text
    assert response.json()["id"], "a request without an id gets one"
    np.testing.assert_allclose(_scores_from_json(response.json()), scorer.score(rows), atol=1e-6)


def test_v2_reason_codes_are_xgboost_treeshap_top_contributions(
    url: str, scorer: Scorer, feature_rows: np.ndarray
) -> None:
    rows = np.nan_to_num(feature_rows[:10], nan=0.0).astype(np.float32)

    response = httpx.post(url + V2 + "/infer", json=_v2_json(rows, reasons=True, top_k=4))

    assert response.status_code == 200, response.text
    output = next(o for o in response.json()["outputs"] if o["name"] == "reasons")
    served = [orjson.loads(row) for row in output["data"]]
    contributions = scorer.booster.predict(xgb.DMatrix(rows, nthread=1), pred_contribs=True)[:, :-1]
    for row, reasons in enumerate(served):
        assert 1 <= len(reasons) <= 4
        top = np.argsort(-contributions[row])[: len(reasons)]
        assert [r["feature"] for r in reasons] == [FEATURE_NAMES[i] for i in top]
        assert [r["contribution"] for r in reasons] == [round(float(contributions[row, i]), 4) for i in top]
        assert all(r["contribution"] > 0 for r in reasons), "only features that pushed towards fraud"


def test_v1_feature_rows_score_like_the_artifact(url: str, scorer: Scorer, feature_rows: np.ndarray) -> None:
    rows = np.nan_to_num(feature_rows[:50], nan=0.0).astype(np.float32)

    response = httpx.post(url + V1, json={"instances": rows.tolist()})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == scorer.model_version and body["threshold"] == scorer.threshold
    np.testing.assert_allclose(body["predictions"], scorer.score(rows), atol=1e-6)


def test_v1_raw_transactions_are_featurised_without_history_and_explained_on_request(
    url: str, scorer: Scorer, history_rows: pd.DataFrame
) -> None:
    columns = [c for c in history_rows.columns if c in TRANSACTION_FIELDS]
    records = orjson.loads(history_rows[columns].head(5).to_json(orient="records", date_format="iso"))
    transactions = [
        Transaction.model_validate({k: v for k, v in r.items() if v is not None}) for r in records
    ]
    expected = scorer.score(FeatureEngine().transform(encode_transactions(transactions)))

    response = httpx.post(
        url + V1,
        json={
            "instances": [t.model_dump(mode="json") for t in transactions],
            "parameters": {"reasons": True},
        },
    )

    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["predictions"], expected, atol=1e-6)
    assert len(response.json()["reasons"]) == len(transactions)


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        (
            V2 + "/infer",
            {"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
            f"must have shape [n, {len(FEATURE_NAMES)}]",
        ),
        (
            V2 + "/infer",
            {"inputs": [{"name": "amount", "shape": [1], "datatype": "FP32", "data": [1]}]},
            "one input per feature",
        ),
        (V1, {"instances": [[1.0, 2.0]]}, f"each have {len(FEATURE_NAMES)} numbers"),
        (V1, {"instances": [{"amount": -3}]}, "invalid transaction: amount"),
        (V1, {"instances": [[1.0], {"amount": 3}]}, "all feature rows (lists) or all transactions"),
        (V1, {"rows": []}, '"instances" list'),
    ],
)
def test_bad_requests_get_400_with_the_reason(url: str, path: str, body: dict, expected: str) -> None:
    response = httpx.post(url + path, json=body)

    assert response.status_code == 400, response.text
    assert expected in response.json()["error"]


_ROW = [0.0] * len(FEATURE_NAMES)


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        (
            V2 + "/infer",
            {
                **_v2_json(np.zeros((1, len(FEATURE_NAMES)), dtype=np.float32)),
                "parameters": {"reasons": True, "top_k": "many"},
            },
            "parameter top_k",
        ),
        (
            V2 + "/infer",
            {
                **_v2_json(np.zeros((1, len(FEATURE_NAMES)), dtype=np.float32)),
                "parameters": {"reasons": True, "top_k": 0},
            },
            "parameter top_k",
        ),
        (V1, {"instances": [_ROW], "parameters": {"reasons": True, "exact": "perhaps"}}, "parameter exact"),
        (V1, {"instances": [_ROW], "parameters": {"reasons": "maybe"}}, "parameter reasons"),
        (V1, {"instances": [_ROW], "parameters": [1, 2]}, '"parameters" must be an object'),
    ],
)
def test_bad_parameters_get_400_not_500(url: str, path: str, body: dict, expected: str) -> None:
    response = httpx.post(url + path, json=body)

    assert response.status_code == 400, response.text
    assert expected in response.json()["error"]


@pytest.mark.parametrize(
    ("header", "declared_length", "expected"),
    [
        (
            b'{"inputs": [{"name": "features", "datatype": "FP32", "parameters": {"binary_data_size": 4}}]}',
            None,
            "malformed inference request: KeyError: 'shape'",
        ),
        (b'[{"name": "features"}]', None, 'an object with an "inputs" list'),
        (b'{"inputs": ["features"]}', None, "malformed inference request"),
        (b'{"inputs": []}', "fourteen", "must be the length of the JSON header"),
        (b'{"inputs": []}', "99999", "must be the length of the JSON header"),
    ],
)
def test_a_malformed_binary_request_gets_400_not_500(
    url: str, header: bytes, declared_length: str | None, expected: str
) -> None:
    response = httpx.post(
        url + V2 + "/infer",
        content=header + b"\x00" * 4,
        headers={
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": declared_length or str(len(header)),
        },
    )

    assert response.status_code == 400, response.text
    assert expected in response.json()["error"]


def test_metrics_show_model_version_scores_decisions_and_kserve_latencies(url: str, scorer: Scorer) -> None:
    httpx.post(url + V2 + "/infer", json=_v2_json(np.zeros((3, len(FEATURE_NAMES)), dtype=np.float32)))

    families = {f.name: f for f in text_string_to_metric_families(httpx.get(url + "/metrics").text)}

    (info,) = families["fraudops_model_info"].samples
    assert info.labels == {"model": MODEL_NAME, "version": scorer.model_version} and info.value == 1
    decided = {
        s.labels["outcome"]: s.value
        for s in families["fraudops_predictor_decisions"].samples
        if s.name.endswith("_total")
    }
    score_count = next(
        s.value for s in families["fraudops_predictor_score"].samples if s.name.endswith("_count")
    )
    assert decided["fraud"] + decided["legitimate"] == score_count >= 3
    for kserve_metric in (
        "request_preprocess_seconds",
        "request_predict_seconds",
        "request_postprocess_seconds",
    ):
        count = next(
            s.value
            for s in families[kserve_metric].samples
            if s.name.endswith("_count") and s.labels.get("model_name") == MODEL_NAME
        )
        assert count >= 1, kserve_metric


def test_the_first_request_after_readiness_is_already_warm(served: tuple[Served, float]) -> None:
    _, first_s = served
    assert first_s < 0.5, f"the first inference took {first_s * 1000:.0f} ms: JIT or lazy init hit a client"


def test_binary_and_json_agree_on_a_1000_row_batch(url: str, feature_rows: np.ndarray) -> None:
    rows = np.nan_to_num(feature_rows, nan=0.0).astype(np.float32)
    with httpx.Client() as client:
        binary = _v2_binary(client, url, rows)
    json_scores = _scores_from_json(httpx.post(url + V2 + "/infer", json=_v2_json(rows)).json())

    length = int(binary.headers["inference-header-content-length"])
    assert np.array_equal(np.frombuffer(binary.content[length:], dtype=np.float32), json_scores)
    assert struct.calcsize("<f") * len(rows) == len(binary.content) - length


@pytest.mark.parametrize(
    ("declared_rows", "sent_rows", "expected"),
    [
        (2, 1, "filling its shape"),  # the bytes hold one row, the shape says two
        (1, 1, "more binary data than the request holds"),  # binary_data_size larger than the body
    ],
)
def test_a_binary_tensor_that_does_not_match_its_header_is_400(
    url: str, declared_rows: int, sent_rows: int, expected: str
) -> None:
    payload = np.zeros((sent_rows, len(FEATURE_NAMES)), dtype=np.float32).tobytes()
    size = len(payload) if expected == "filling its shape" else len(payload) + 4
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": [declared_rows, len(FEATURE_NAMES)],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": size},
                }
            ]
        }
    )

    response = httpx.post(
        url + V2 + "/infer",
        content=header + payload,
        headers={
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(header)),
        },
    )

    assert response.status_code == 400, response.text
    assert expected in response.json()["error"]
