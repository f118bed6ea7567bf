"""The client side of KServe's V2 (Open Inference Protocol) with binary tensors: one request encoding
and one response decoding, for the remote scorer, the predictor benchmark and the predictor's tests."""

from __future__ import annotations

import struct
from typing import Any

import httpx
import numpy as np
import orjson


def v2_binary_request(
    features: np.ndarray, parameters: dict[str, Any] | None = None, binary_scores: bool = False
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a V2 inference request carrying `features` as one binary FP32 tensor
    ("features", [rows, F]); `binary_scores` asks for fraud_probability back as binary FP32 as well."""
    payload = np.ascontiguousarray(features, dtype=np.float32)
    request: dict[str, Any] = {
        "inputs": [
            {
                "name": "features",
                "shape": list(payload.shape),
                "datatype": "FP32",
                "parameters": {"binary_data_size": payload.nbytes},
            }
        ]
    }
    if binary_scores:
        request["outputs"] = [{"name": "fraud_probability", "parameters": {"binary_data": True}}]
    if parameters is not None:
        request["parameters"] = parameters
    header = orjson.dumps(request)
    return header + payload.tobytes(), {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }


def decode_v2_response(response: httpx.Response) -> dict:
    """A V2 response with JSON or binary outputs → {'parameters': …, 'outputs': {name: list}}."""
    header_length = response.headers.get("inference-header-content-length")
    raw = response.content
    header = orjson.loads(raw[: int(header_length)] if header_length else raw)
    tail = memoryview(raw)[int(header_length) :] if header_length else memoryview(b"")
    outputs = {}
    for output in header["outputs"]:
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is None:
            outputs[output["name"]] = output["data"]
            continue
        chunk, tail = tail[:size], tail[size:]
        if output["datatype"] == "BYTES":
            items, position = [], 0
            while position < len(chunk):
                (length,) = struct.unpack_from("<I", chunk, position)
                items.append(bytes(chunk[position + 4 : position + 4 + length]))
                position += 4 + length
            outputs[output["name"]] = items
        else:
            outputs[output["name"]] = np.frombuffer(chunk, dtype=np.float32).tolist()
    return {"parameters": header.get("parameters"), "outputs": outputs}
