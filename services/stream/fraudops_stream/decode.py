"""Decode and validate a batch of Kafka records in bulk; every invalid record comes back with its reason.

The whole batch goes through pydantic-core in one call (`validate_json` of a JSON array built from
the raw values), which is several times faster than validating record by record. Only when that
fails are the offending items located — pydantic reports their index — and set aside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from fraudops.fastschema import fast_decode
from fraudops.schema import Transaction

_BATCH = TypeAdapter(list[Transaction])
_REQUIRED_IN_STREAM = ("transaction_id", "event_time", "customer_id")


@dataclass(frozen=True)
class Rejected:
    index: int  # position in the batch
    reason: str
    field: str


def _reason(error: dict[str, Any]) -> tuple[str, str]:
    location = [str(part) for part in error["loc"][1:]]
    field = ".".join(location) or "record"
    return f"{field}: {error['msg']}", field


def decode_batch(values: list[bytes | None]) -> tuple[list[int], list[dict[str, Any]], list[Rejected]]:
    """(indexes of valid records, their normalised Transaction dicts, rejects with reasons).

    Most records take the C fast path (a msgspec decoder derived from the same schema); the rest —
    invalid ones and unusual spellings — go through pydantic, which decides and explains.
    """
    present = [index for index, value in enumerate(values) if value]
    fast_indexes, fast_records, slow = fast_decode([values[i] for i in present])  # type: ignore[misc]
    if not slow:
        return (
            [present[i] for i in fast_indexes],
            fast_records,
            [
                Rejected(index, "record has no value", "record")
                for index, value in enumerate(values)
                if not value
            ],
        )
    slow_values: list[bytes | None] = [None] * len(values)
    for position in slow:
        slow_values[present[position]] = values[present[position]]
    slow_indexes, slow_records, rejects = _decode_with_pydantic(slow_values)
    rejects = [r for r in rejects if values[r.index]] + [
        Rejected(index, "record has no value", "record") for index, value in enumerate(values) if not value
    ]
    by_index = dict(zip((present[i] for i in fast_indexes), fast_records, strict=True))
    by_index.update(zip(slow_indexes, slow_records, strict=True))
    order = sorted(by_index)
    rejects.sort(key=lambda r: r.index)
    return order, [by_index[i] for i in order], rejects


def _decode_with_pydantic(
    values: list[bytes | None],
) -> tuple[list[int], list[dict[str, Any]], list[Rejected]]:
    rejects: list[Rejected] = []
    candidates = [index for index, value in enumerate(values) if value]
    models: list[Transaction] = []
    while candidates:
        document = b"[" + b",".join(values[i] for i in candidates) + b"]"  # type: ignore[misc]
        try:
            models = _BATCH.validate_json(document)
            break
        except ValidationError as exc:
            errors = exc.errors()
            if any(error["type"] == "json_invalid" for error in errors):
                # A broken record breaks the array: find the broken ones individually, then retry.
                broken = set()
                for index in candidates:
                    try:
                        orjson.loads(values[index])  # type: ignore[arg-type]
                    except orjson.JSONDecodeError as decode_error:
                        broken.add(index)
                        rejects.append(Rejected(index, f"not valid JSON: {decode_error}", "record"))
                candidates = [index for index in candidates if index not in broken]
                continue
            bad: dict[int, tuple[str, str]] = {}
            for error in errors:
                bad.setdefault(int(error["loc"][0]), _reason(error))
            for position, (reason, field) in bad.items():
                rejects.append(Rejected(candidates[position], reason, field))
            candidates = [index for position, index in enumerate(candidates) if position not in bad]
    # Stream records must carry their own identity and time (the API may default them; a stream may not).
    indexes: list[int] = []
    kept: list[Transaction] = []
    for index, model in zip(candidates, models, strict=True):
        missing = [
            name
            for name in _REQUIRED_IN_STREAM
            if name not in model.model_fields_set or getattr(model, name) is None
        ]
        if missing:
            rejects.append(Rejected(index, f"{missing[0]}: field required in stream records", missing[0]))
        else:
            indexes.append(index)
            kept.append(model)
    records = _BATCH.dump_python(kept, mode="json") if kept else []
    rejects.sort(key=lambda r: r.index)
    return indexes, records, rejects
