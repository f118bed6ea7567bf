"""The client side of KServe's V2 (Open Inference Protocol) with binary tensors: one request encoding
and one response decoding, for the remote scorer, the predictor benchmark and the predictor's tests.

A model with extra inputs (`fraudops.extras`) is sent the built-in features and, beside them, one
tensor of raw values per extra field — `extras.<name>`: FP32 for a numeric field (NaN: missing),
BYTES of UTF-8 text for a categorical one (empty: missing) — and its model server encodes them with
the codes its artifact holds. Both directions of that form are here (`extras_tensors`, `extras_rows`).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import numpy as np
import orjson

from fraudops.extras import ExtraFields, ExtraKind

FEATURES_INPUT = "features"
EXTRAS_INPUT_PREFIX = "extras."
_DATATYPES = {ExtraKind.NUMERIC: "FP32", ExtraKind.CATEGORICAL: "BYTES"}
_KINDS = {datatype: kind for kind, datatype in _DATATYPES.items()}


def extras_tensor_types(fields: ExtraFields) -> dict[str, str]:
    """Tensor name → V2 datatype of the raw extra fields a model server takes."""
    return {EXTRAS_INPUT_PREFIX + name: _DATATYPES[kind] for name, kind in fields.kinds.items()}


def extra_fields_of(tensor_types: Mapping[str, str]) -> ExtraFields:
    """The inverse of `extras_tensor_types`, from a model server's metadata (other inputs ignored)."""
    return ExtraFields(
        {
            name.removeprefix(EXTRAS_INPUT_PREFIX): _KINDS[datatype]
            for name, datatype in tensor_types.items()
            if name.startswith(EXTRAS_INPUT_PREFIX) and datatype in _KINDS
        }
    )


def extras_tensors(fields: ExtraFields, rows: Sequence[Mapping[str, Any] | None]) -> dict[str, np.ndarray]:
    """Each extra field of the rows as its tensor: float32 numbers (NaN: missing), or UTF-8 text (b"")."""
    tensors: dict[str, np.ndarray] = {}
    for name, kind in fields.kinds.items():
        values = [row.get(name) if row else None for row in rows]
        if kind is ExtraKind.NUMERIC:
            numbers = [v if type(v) in (int, float) else math.nan for v in values]
            tensors[EXTRAS_INPUT_PREFIX + name] = np.asarray(numbers, dtype=np.float64).astype(np.float32)
        else:
            text = [v.encode() if type(v) is str else b"" for v in values]
            tensors[EXTRAS_INPUT_PREFIX + name] = np.asarray(text, dtype=np.object_)
    return tensors


def extras_rows(fields: ExtraFields, tensors: Mapping[str, Any], rows: int) -> list[dict[str, Any]]:
    """The rows' extra fields from their tensors (a tensor not sent: missing in every row); ValueError
    when a tensor does not hold one value per row."""
    columns: dict[str, list[Any]] = {}
    for name, kind in fields.kinds.items():
        tensor = tensors.get(EXTRAS_INPUT_PREFIX + name)
        if tensor is None:
            continue
        values = np.asarray(tensor).reshape(-1)
        if len(values) != rows:
            raise ValueError(f"input {EXTRAS_INPUT_PREFIX}{name} has {len(values)} values for {rows} rows")
        if kind is ExtraKind.NUMERIC:
            numbers = values.astype(np.float32).astype(np.float64)
            columns[name] = [None if math.isnan(v) else v for v in numbers.tolist()]
        else:
            columns[name] = [
                (v.decode() if isinstance(v, bytes) else str(v)) or None for v in values.tolist()
            ]
    return [{name: column[i] for name, column in columns.items()} for i in range(rows)]


def _binary(tensor: np.ndarray) -> tuple[str, bytes]:
    if tensor.dtype == np.object_:  # BYTES: each element's length (uint32, little-endian), then its bytes
        return "BYTES", b"".join(struct.pack("<I", len(item)) + item for item in tensor.tolist())
    return "FP32", np.ascontiguousarray(tensor, dtype=np.float32).tobytes()


def v2_binary_request(
    features: np.ndarray,
    parameters: dict[str, Any] | None = None,
    binary_scores: bool = False,
    extras: Mapping[str, np.ndarray] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a V2 inference request carrying `features` as one binary FP32 tensor
    ("features", [rows, F]), and `extras` (`extras_tensors`) after it; `binary_scores` asks for
    fraud_probability back as binary FP32 as well."""
    payload = np.ascontiguousarray(features, dtype=np.float32)
    inputs = [
        {
            "name": FEATURES_INPUT,
            "shape": list(payload.shape),
            "datatype": "FP32",
            "parameters": {"binary_data_size": payload.nbytes},
        }
    ]
    chunks = [payload.tobytes()]
    for name, tensor in (extras or {}).items():
        datatype, data = _binary(tensor)
        inputs.append(
            {
                "name": name,
                "shape": [len(tensor)],
                "datatype": datatype,
                "parameters": {"binary_data_size": len(data)},
            }
        )
        chunks.append(data)
    request: dict[str, Any] = {"inputs": inputs}
    if binary_scores:
        request["outputs"] = [{"name": "fraud_probability", "parameters": {"binary_data": True}}]
    if parameters is not None:
        request["parameters"] = parameters
    header = orjson.dumps(request)
    return header + b"".join(chunks), {
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
