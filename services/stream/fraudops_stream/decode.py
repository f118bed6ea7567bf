"""Decode and validate a batch of Kafka record values; every invalid record comes back with its reason.

Most records take the C fast path (`fraudops.fastschema`, a msgspec decoder derived from the
schema). The rest — invalid records and unusual spellings — are validated one by one by pydantic,
which stays the authority on what is valid and on the error message. One by one, because a batch
validated as one JSON array cannot say which record broke the array when the JSON itself is bad
(a record nested too deeply for one parser but not for another would never be found).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from fraudops.fastschema import STREAM_REQUIRED, fast_decode
from fraudops.schema import Transaction

_ONE = TypeAdapter(Transaction)


@dataclass(frozen=True)
class Rejected:
    index: int  # position in the batch
    reason: str
    field: str


class _DuplicatedKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _DuplicatedKeyError(next(key for key in keys if keys.count(key) > 1))
    return dict(pairs)


def decode_batch(values: list[bytes | None]) -> tuple[list[int], list[dict[str, Any]], list[Rejected]]:
    """(indexes of valid records, their normalised Transaction dicts, rejects with reasons), in batch order."""
    present = [index for index, value in enumerate(values) if value]
    fast_indexes, fast_records, slow = fast_decode([values[i] for i in present])  # type: ignore[misc]
    rejects = [
        Rejected(index, "record has no value", "record") for index, value in enumerate(values) if not value
    ]
    if not slow:
        return [present[i] for i in fast_indexes], fast_records, rejects
    by_index = dict(zip((present[i] for i in fast_indexes), fast_records, strict=True))
    for position in slow:
        index = present[position]
        outcome = validate_one(values[index])  # type: ignore[arg-type]
        if isinstance(outcome, dict):
            by_index[index] = outcome
        else:
            reason, field = outcome
            rejects.append(Rejected(index, reason, field))
    order = sorted(by_index)
    rejects.sort(key=lambda r: r.index)
    return order, [by_index[i] for i in order], rejects


def validate_one(value: bytes) -> dict[str, Any] | tuple[str, str]:
    """One record through pydantic: its normalised dict, or (reason, field) when it is invalid."""
    try:
        model = _ONE.validate_json(value)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in error["loc"]) or "record"
        if error["type"] == "json_invalid":
            return f"not valid JSON: {error['msg']}", "record"
        return f"{field}: {error['msg']}", field
    # Stream records must carry their own identity and time (the API may default them; a stream may not).
    missing = [
        name for name in STREAM_REQUIRED if name not in model.model_fields_set or getattr(model, name) is None
    ]
    if missing:
        return f"{missing[0]}: field required in stream records", missing[0]
    try:  # valid, so a flat object: the standard parser finds a key given twice (the others keep the last)
        json.loads(value, object_pairs_hook=_no_duplicated_keys)
    except _DuplicatedKeyError as exc:
        return f"{exc.key}: the key appears more than once", exc.key
    return _ONE.dump_python(model, mode="json")  # type: ignore[no-any-return]
