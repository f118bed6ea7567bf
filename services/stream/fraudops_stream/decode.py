"""Decode and validate a batch of Kafka record values; every invalid record comes back with its reason.

Most records take the C fast path (`fraudops.fastschema`, a msgspec decoder derived from the
schema). The rest — invalid records and unusual spellings — are validated one by one by pydantic,
which stays the authority on what is valid and on the error message. One by one, because a batch
validated as one JSON array cannot say which record broke the array when the JSON itself is bad
(a record nested too deeply for one parser but not for another would never be found).

Extra fields (`extras`) are checked against the served models' extra inputs last, on both paths
alike: a value of the wrong kind for its model input (text for a numeric one, a number for a
categorical one) is a reject like any other; a field no model reads is kept and stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from fraudops.extras import NO_EXTRA_FIELDS, ExtraFields
from fraudops.fastschema import STREAM_REQUIRED, fast_decode
from fraudops.schema import EXTRAS_FIELD, Transaction

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


def decode_batch(
    values: list[bytes | None], extra_fields: ExtraFields = NO_EXTRA_FIELDS
) -> tuple[list[int], list[dict[str, Any]], list[Rejected]]:
    """(indexes of valid records, their normalised Transaction dicts, rejects with reasons), in batch order.

    A dict holds `extras` only when its record carried extra fields; `extra_fields` are the kinds the
    served models read them as."""
    present = [index for index, value in enumerate(values) if value]
    fast_indexes, fast_records, slow = fast_decode([values[i] for i in present])  # type: ignore[misc]
    rejects = [
        Rejected(index, "record has no value", "record") for index, value in enumerate(values) if not value
    ]
    if not slow:
        indexes = [present[i] for i in fast_indexes]
        if extra_fields:
            return _of_their_kinds(indexes, fast_records, rejects, extra_fields)
        return indexes, fast_records, rejects
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
    if extra_fields:
        return _of_their_kinds(order, [by_index[i] for i in order], rejects, extra_fields)
    return order, [by_index[i] for i in order], rejects


def _of_their_kinds(
    indexes: list[int], records: list[dict[str, Any]], rejects: list[Rejected], fields: ExtraFields
) -> tuple[list[int], list[dict[str, Any]], list[Rejected]]:
    """The records whose extra fields have the kinds the models read them as; the others become rejects."""
    wrong = {
        position: refusal
        for position, record in enumerate(records)
        if EXTRAS_FIELD in record and (refusal := fields.refusal(record[EXTRAS_FIELD])) is not None
    }
    if not wrong:
        return indexes, records, rejects
    for position, (field, reason) in wrong.items():
        rejects.append(Rejected(indexes[position], f"{field}: {reason}", field))
    rejects.sort(key=lambda r: r.index)
    kept = [position for position in range(len(records)) if position not in wrong]
    return [indexes[p] for p in kept], [records[p] for p in kept], rejects


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
    try:  # valid: the standard parser finds a key given twice (the others keep the last)
        json.loads(value, object_pairs_hook=_no_duplicated_keys)
    except _DuplicatedKeyError as exc:
        # valid, so the only object inside is `extras`: a key that is no field of the record is one of its
        field = exc.key if exc.key in Transaction.model_fields else f"{EXTRAS_FIELD}.{exc.key}"
        return f"{field}: the key appears more than once", field
    record: dict[str, Any] = _ONE.dump_python(model, mode="json")
    if record[EXTRAS_FIELD] is None:
        del record[EXTRAS_FIELD]  # as on the fast path: the key only when the record carried extra fields
    return record
