"""The V2 (Open Inference Protocol) binary encoding the remote scorer, the benchmark and the tests share:
what a request carries, and how a response with binary outputs reads back."""

from __future__ import annotations

import httpx
import numpy as np
import orjson

from fraudops.inference_protocol import decode_v2_response, v2_binary_request


def test_a_request_carries_the_features_as_one_binary_fp32_tensor_after_its_json_header() -> None:
    features = np.array([[1.5, np.nan, 3.0], [4.0, 5.0, 6.0]], dtype=np.float64)

    body, headers = v2_binary_request(features, {"reasons": False}, binary_scores=True)

    length = int(headers["Inference-Header-Content-Length"])
    assert headers["Content-Type"] == "application/octet-stream"
    assert orjson.loads(body[:length]) == {
        "inputs": [
            {"name": "features", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}}
        ],
        "outputs": [{"name": "fraud_probability", "parameters": {"binary_data": True}}],
        "parameters": {"reasons": False},
    }
    sent = np.frombuffer(body[length:], dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(sent, features.astype(np.float32))  # NaN stays NaN


def test_without_parameters_or_binary_scores_the_header_holds_only_the_input() -> None:
    body, headers = v2_binary_request(np.zeros((1, 2), dtype=np.float32))

    assert orjson.loads(body[: int(headers["Inference-Header-Content-Length"])]).keys() == {"inputs"}


def test_a_response_with_binary_and_json_outputs_decodes_to_lists() -> None:
    scores = np.array([0.25, 0.75], dtype=np.float32).tobytes()
    header = orjson.dumps(
        {
            "parameters": {"model_version": "v7"},
            "outputs": [
                {"name": "fraud_probability", "datatype": "FP32", "parameters": {"binary_data_size": 8}},
                {"name": "label", "datatype": "INT64", "data": [0, 1]},
            ],
        }
    )
    response = httpx.Response(
        200, content=header + scores, headers={"inference-header-content-length": str(len(header))}
    )

    assert decode_v2_response(response) == {
        "parameters": {"model_version": "v7"},
        "outputs": {"fraud_probability": [0.25, 0.75], "label": [0, 1]},
    }
