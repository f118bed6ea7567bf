"""A msgspec decoder derived from the pydantic `Transaction`: the stream's fast path, never a second schema.

The struct below is generated from `Transaction.model_fields` — the same fields, types, defaults and
constraints — with the fast path kept at least as strict as pydantic: a record it accepts, pydantic
accepts with the same values. Anything it does not accept (lower-case enum names, naive times,
numbers sent as strings, a missing id, an invalid value) goes to pydantic, which stays the
authority on what is valid and on the error message. Decoding in C is ~5x faster than pydantic.
"""

from __future__ import annotations

import re
import time
import types
import typing
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import msgspec
import numpy as np
from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic.fields import FieldInfo

from fraudops.schema import (
    CENT_TOLERANCE,
    CONTROL_CHARACTERS,
    EARLIEST_EVENT_TIME,
    EXTRA_NAME,
    EXTRAS_FIELD,
    FLOAT32_MAX,
    FUTURE_TOLERANCE_S,
    LATEST_TIME,
    MAX_EXTRA_FIELDS,
    MAX_EXTRA_TEXT,
    Transaction,
)

#: Fields a stream record must carry itself (the API may default them; a stream may not).
STREAM_REQUIRED = ("transaction_id", "event_time", "customer_id")
_EARLIEST, _LATEST = EARLIEST_EVENT_TIME, LATEST_TIME  # the window of the other times
_EARLIEST_S = EARLIEST_EVENT_TIME.timestamp()
#: A key followed by white space before its colon: such records take pydantic's path (see `fast_decode`).
_SPACED_KEY = re.compile(rb'"\s+:')


#: A pattern that is one character class with a length (`^[A-Z]{2}$`, `^[A-Za-z0-9_.:\-]+$`) is not
#: checked by msgspec value by value (a Python regex call each, ~0.7 µs, most of the decode): the
#: lengths stay msgspec constraints, and the characters of a whole batch's values are checked at
#: once, joined into one string, by a regex for any character outside the class.
_SIMPLE_PATTERN = re.compile(r"^\^\[([^\]]+)\](\+|\{\d+\})\$$")
#: The check for plain strings: pydantic strips surrounding whitespace; the fast path refuses it.
_STRIPPED = "stripped"
Check = tuple[str, "re.Pattern[str] | str"]


#: annotated-types constraint → the msgspec.Meta option (and the attribute) of the same meaning.
_CONSTRAINTS = (
    (Gt, "gt"),
    (Ge, "ge"),
    (Lt, "lt"),
    (Le, "le"),
    (MinLen, "min_length"),
    (MaxLen, "max_length"),
)


def _meta(metadata: list[Any]) -> msgspec.Meta | None:
    """msgspec constraints equal to pydantic's annotated-types metadata (None when there are none)."""
    options: dict[str, Any] = {}
    for item in metadata:
        for kind, option in _CONSTRAINTS:
            if isinstance(item, kind):
                options[option] = getattr(item, option)
        if getattr(item, "pattern", None):
            options["pattern"] = item.pattern
    return msgspec.Meta(**options) if options else None


def _fast_type(annotation: Any, metadata: list[Any], checks: list[re.Pattern[str] | str]) -> Any:
    """The msgspec type for one pydantic annotation (Optional and Annotated unwrapped, constraints kept).

    String checks left for the whole batch are appended to `checks`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [
            _fast_type(arg, metadata, checks) for arg in typing.get_args(annotation) if arg is not type(None)
        ]
        optional = type(None) in typing.get_args(annotation)
        inner = members[0] if len(members) == 1 else typing.Union[tuple(members)]  # noqa: UP007
        return inner | None if optional else inner
    if origin is Annotated:
        base, *extra = typing.get_args(annotation)
        nested = [m for info in extra if isinstance(info, FieldInfo) for m in info.metadata]
        return _fast_type(base, [*metadata, *nested], checks)
    if annotation is datetime:
        return Annotated[datetime, msgspec.Meta(tz=True)]  # naive times take pydantic's path (→ UTC)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return annotation  # canonical values only; other spellings take pydantic's path
    if annotation is str:
        pattern = next((m.pattern for m in metadata if getattr(m, "pattern", None)), None)
        simple = _SIMPLE_PATTERN.match(pattern) if pattern else None
        if pattern is None:
            # pydantic strips surrounding whitespace (str_strip_whitespace); the fast path refuses it instead.
            checks.append(_STRIPPED)
        elif simple is not None:
            metadata = [m for m in metadata if not getattr(m, "pattern", None)]
            checks.append(re.compile(f"[^{simple[1]}]"))
            length = 1 if simple[2] == "+" else int(simple[2][1:-1])
            metadata.append(MinLen(length))
            if simple[2] != "+":
                metadata.append(MaxLen(length))
    meta = _meta(metadata)
    return Annotated[annotation, meta] if meta is not None else annotation


#: `extras` is validated by plain functions (`fraudops.schema.extra_value`), which msgspec cannot read:
#: its type is stated here — a flat object of names to text, numbers and nulls, within the same bounds.
#: Control characters in its text are checked after decoding (`fast_decode`); booleans, non-finite
#: numbers and numbers beyond float32 are refused by the types, so they take pydantic's path.
_FAST_EXTRAS = Annotated[
    dict[
        Annotated[str, msgspec.Meta(pattern=EXTRA_NAME.pattern)],
        Annotated[str, msgspec.Meta(max_length=MAX_EXTRA_TEXT)]
        | Annotated[float, msgspec.Meta(ge=-FLOAT32_MAX, le=FLOAT32_MAX)]
        | None,
    ],
    msgspec.Meta(max_length=MAX_EXTRA_FIELDS),
]


def _struct_from(model: type[Transaction]) -> tuple[type[msgspec.Struct], list[Check], dict[str, Any]]:
    """The struct, the string checks left for the whole batch, and every field's JSON default in order.

    Optional fields default to UNSET, so a decoded record tells which keys it carried: that count,
    against the keys in the raw bytes, finds a duplicated key without a second parse.
    """
    fields: list[Any] = []
    batch_checks: list[Check] = []
    template: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name == EXTRAS_FIELD:  # absent from most records: no template entry (see `fast_decode`)
            fields.append((name, _FAST_EXTRAS | None | msgspec.UnsetType, msgspec.UNSET))
            continue
        checks: list[re.Pattern[str] | str] = []
        kind = _fast_type(info.annotation, list(info.metadata), checks)
        batch_checks.extend((name, check) for check in checks)
        if name in STREAM_REQUIRED or info.is_required():
            fields.append((name, kind))
            template[name] = None  # always present; the placeholder only keeps the field order
        else:
            fields.append((name, kind | msgspec.UnsetType, msgspec.UNSET))
            template[name] = msgspec.to_builtins(info.get_default(call_default_factory=False))
    struct = msgspec.defstruct("FastTransaction", fields, forbid_unknown_fields=True, kw_only=True)
    return struct, batch_checks, template


FastTransaction, _BATCH_CHECKS, _TEMPLATE = _struct_from(Transaction)
_decoder = msgspec.json.Decoder(FastTransaction)


def fast_decode(values: list[bytes]) -> tuple[list[int], list[dict[str, Any]], list[int]]:
    """(indexes decoded on the fast path, their records as JSON-ready dicts, indexes left for pydantic).

    Besides the struct's own constraints, the rules of `Transaction` that msgspec cannot state are
    checked here, batch-wide where they can be: times in their windows, coordinates together, amounts
    never negative and in whole cents (rounded to them), string characters, no duplicated key.

    A record's dict has an `extras` key only when it carried extra fields (an object, not null).
    """
    accepted: list[int] = []
    structs: list[Any] = []
    with_extras: list[int] = []  # positions in `structs` of the records that named `extras`
    slow: list[int] = []
    latest = time.time() + FUTURE_TOLERANCE_S
    decode = _decoder.decode
    unset = msgspec.UNSET
    for index, value in enumerate(values):
        try:
            record: Any = decode(value)  # a FastTransaction (built at import time: mypy sees a bare Struct)
        except (msgspec.ValidationError, msgspec.DecodeError):
            slow.append(index)
            continue
        stamp = record.event_time.timestamp()
        opened, changed = record.account_opened_at, record.credential_change_at
        if (
            (record.latitude in (None, unset)) is not (record.longitude in (None, unset))
            or record.customer_id is None
            or stamp > latest
            or stamp < _EARLIEST_S
            or (opened.__class__ is datetime and not _EARLIEST <= opened < _LATEST)
            or (changed.__class__ is datetime and not _EARLIEST <= changed < _LATEST)
        ):
            slow.append(index)
            continue
        if record.extras is not unset:
            with_extras.append(len(structs))
        accepted.append(index)
        structs.append(record)
    refused = _failing_batch_checks(structs) | _unstorable_amounts(structs)
    extra_keys = _extra_keys(structs, with_extras, refused)
    present = msgspec.to_builtins(structs)
    for i in with_extras:
        if structs[i].extras is None:
            del present[i][EXTRAS_FIELD]  # null is no extras: the dict says so by leaving the key out
    # A key given twice decodes silently (the last wins): the keys in the bytes outnumber those decoded.
    # White space before a colon hides a key from that count, so those records take pydantic's path too.
    if extra_keys:
        refused.update(
            i
            for i, (record, index) in enumerate(zip(present, accepted, strict=True))
            if values[index].count(b'":') != len(record) + extra_keys.get(i, 0)
        )
    else:
        refused.update(
            i
            for i, (record, index) in enumerate(zip(present, accepted, strict=True))
            if values[index].count(b'":') != len(record)
        )
    if _SPACED_KEY.search(b"".join([values[index] for index in accepted])):
        refused.update(i for i, index in enumerate(accepted) if _SPACED_KEY.search(values[index]))
    if refused:
        slow = sorted([*slow, *(accepted[i] for i in refused)])
        accepted = [index for i, index in enumerate(accepted) if i not in refused]
        present = [record for i, record in enumerate(present) if i not in refused]
    template, complete = _TEMPLATE, len(_TEMPLATE)
    # Records that name every field (most producers, the simulator) need no defaults filled in.
    return (
        accepted,
        [record if len(record) == complete else {**template, **record} for record in present],
        slow,
    )


def _extra_keys(structs: list[Any], with_extras: list[int], refused: set[int]) -> dict[int, int]:
    """How many keys in each record's bytes its dict will not hold at the top level (for the
    duplicated-key count): the keys of its extras object, or the `extras` key itself when it is null
    (the dict leaves it out). A record whose extra text holds a control character is added to
    `refused` (pydantic names the field)."""
    keys: dict[int, int] = {}
    for i in with_extras:
        extras = structs[i].extras
        if extras is None:
            keys[i] = 1
            continue
        keys[i] = len(extras)
        if any(type(v) is str and CONTROL_CHARACTERS.search(v) for v in extras.values()):
            refused.add(i)
    return keys


def _unstorable_amounts(structs: list[Any]) -> set[int]:
    """Positions of records whose amount is negative or not a whole number of cents; the others are rounded.

    The same rule and the same numbers as the schema's (`rint(a * 100) / 100` is the double nearest
    to the cents, as `round` is), in one vector operation instead of a Python call per record.
    """
    if not structs:
        return set()
    amounts = np.fromiter((record.amount for record in structs), dtype=np.float64, count=len(structs))
    cents = amounts * 100
    whole = np.rint(cents)
    rounded = whole / 100
    for i in np.flatnonzero(rounded != amounts).tolist():
        structs[i].amount = float(rounded[i])
    return set(np.flatnonzero((np.abs(cents - whole) > CENT_TOLERANCE) | (amounts < 0)).tolist())


def _failing_batch_checks(structs: list[Any]) -> set[int]:
    """Positions of the records whose strings fail a check left for the whole batch (absent ones pass)."""
    refused: set[int] = set()
    for name, check in _BATCH_CHECKS:
        values = [getattr(record, name) for record in structs]
        if check == _STRIPPED:
            refused.update(i for i, v in enumerate(values) if type(v) is str and (not v or v != v.strip()))
        elif check.search("".join([v for v in values if type(v) is str])):  # type: ignore[union-attr]
            refused.update(i for i, v in enumerate(values) if type(v) is str and check.search(v))  # type: ignore[union-attr]
    return refused
