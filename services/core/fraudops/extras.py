"""Extra model inputs: columns of a bank's export we did not foresee (MCC, POS entry mode, 3-D Secure...).

A training run names them (`--extra-numeric`, `--extra-categorical`); the categorical ones get codes
learned from the training rows — every category seen at least `min_count` times gets its own code,
by frequency; rarer ones share the learned RARE code, and so does any category first seen at
serving — and those codes travel in the artifact, so serving applies exactly the mapping training
used. Nothing collapses silently into a built-in OTHER.

Online, a transaction carries its extra fields in its `extras` object (`fraudops.schema.Extras`);
offline, they are the file's columns of the same names. One function encodes both (`encode`), so a
value reaches the model as the same float32 either way:

    numeric      the number as a float64, then float32; missing, not a number, or not finite -> NaN
    categorical  `normalised`: text trimmed and case-folded, a number as its shortest text (5411.0 ->
                 "5411": a CSV column with gaps reads an MCC as a float), empty -> missing (NaN);
                 then the learned code, RARE for a category the codes do not hold

A missing value is NaN, XGBoost's missing value: the trees send it down the branch training chose
for missing values, online as offline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from fraudops.errors import ConfigurationError
from fraudops.schema import EXTRA_NAME, EXTRA_NUMBER_SCHEMA, EXTRA_TEXT_SCHEMA, MAX_EXTRA_FIELDS

PREFIX = "extra_"
RARE = 0  # the code of categories seen fewer than min_count times in training, and of those never seen
MIN_COUNT = 20
#: How values become model inputs (the table above). 1: before serving took extra inputs (an empty text
#: was a category, and 5411.0 was "5411.0"): such artifacts are refused, as their codes would not match.
ENCODING_VERSION = 2
#: Up to this many values, a column is encoded value by value in Python (a gateway request, a stream
#: record's few fields); beyond, per distinct value (training's millions of rows). The same `_code`
#: and the same float conversion either way: tests hold both paths to identical arrays.
_SMALL = 64


class ExtraKind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


def normalised(value: Any) -> str | None:
    """The category a raw value stands for (None: missing), the same in training and at serving."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip().casefold() or None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return None
        return str(int(number)) if number.is_integer() else repr(number)
    if pd.isna(value):  # pd.NA, NaT
        return None
    return str(value).strip().casefold() or None


def _code(codes: Mapping[str, int], value: Any) -> float:
    category = normalised(value)
    return math.nan if category is None else float(codes.get(category, RARE))


def _number(value: Any) -> float:
    # Only called on None, int and float (see `_numbers`); booleans are ints to Python: 0 and 1.
    return math.nan if value is None else float(value)


def _numbers(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """float32 numbers; anything else (text that is no number, missing, not finite) is NaN."""
    if len(values) <= _SMALL and all(v is None or type(v) in (int, float, bool) for v in values):
        as_float64 = np.asarray([_number(v) for v in values], dtype=np.float64)
    else:
        series = pd.to_numeric(pd.Series(np.asarray(values, dtype=object)), errors="coerce")
        as_float64 = np.asarray(series, dtype=np.float64)
    with np.errstate(over="ignore"):
        out = as_float64.astype(np.float32)
    out[~np.isfinite(out)] = np.nan  # beyond float32's range too: never a silent infinity
    return out


#: Columns whose distinct values pandas finds without merging two that normalise apart: it takes True,
#: 1 and 1.0 for one value ("true" and "1" as categories), so a column mixing booleans and numbers is
#: encoded value by value.
_FACTORIZABLE = frozenset({"string", "empty", "boolean", "integer", "floating", "mixed-integer-float"})


def _categories(codes: Mapping[str, int], values: Sequence[Any] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=object)
    if len(array) > _SMALL and pd.api.types.infer_dtype(array, skipna=True) in _FACTORIZABLE:
        position, distinct = pd.factorize(array, use_na_sentinel=True)
        per_distinct = np.asarray([_code(codes, v) for v in distinct] + [math.nan], dtype=np.float32)
        return per_distinct[position]  # the sentinel -1 picks the NaN at the end
    return np.asarray([_code(codes, v) for v in array], dtype=np.float32)


@dataclass(frozen=True)
class ExtraFields:
    """The extra fields a deployment takes: name → kind, the union over the models it serves.

    What the gateway validates and documents and what the stream checks; the codes stay with each
    model (`ExtraInputs`). A field not named here is still accepted and stored (a later model may
    train on it), but reaches no model.
    """

    kinds: Mapping[str, ExtraKind] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.kinds)

    @classmethod
    def union(cls, by_model: Mapping[str, ExtraFields]) -> ExtraFields:
        """The fields of several models (by name); a field one model reads as a number and another as a
        category cannot be served by both."""
        kinds: dict[str, ExtraKind] = {}
        first: dict[str, str] = {}
        for model, fields in by_model.items():
            for name, kind in fields.kinds.items():
                if kinds.setdefault(name, kind) != kind:
                    raise ConfigurationError(
                        f"extra field {name!r} is {kinds[name]} for {first[name]} and {kind} for {model}: the "
                        "variants of one deployment must agree on the kinds of their extra fields"
                    )
                first.setdefault(name, model)
        return cls(kinds)

    def refusal(self, extras: Mapping[str, Any] | None) -> tuple[str, str] | None:
        """(field, reason) for the first value of the wrong kind for its model input, else None.

        The values are already valid extras (`fraudops.schema.extra_value`): text, numbers and nulls."""
        if not extras:
            return None
        for name, value in extras.items():
            kind = self.kinds.get(name)
            if kind is None or value is None:
                continue
            if kind is ExtraKind.NUMERIC and type(value) is str:
                return f"extras.{name}", f"must be a number or null: {name} is a numeric model input"
            if kind is ExtraKind.CATEGORICAL and type(value) is not str:
                return f"extras.{name}", f"must be text or null: {name} is a categorical model input"
        return None

    def json_schema(self) -> dict[str, dict[str, Any]]:
        """The `properties` of the `extras` object in the API's document: one per field, of its kind."""
        return {
            name: {
                "anyOf": [
                    dict(EXTRA_NUMBER_SCHEMA if kind is ExtraKind.NUMERIC else EXTRA_TEXT_SCHEMA),
                    {"type": "null"},
                ],
                "description": (
                    "A numeric model input (float32; null or left out: missing)."
                    if kind is ExtraKind.NUMERIC
                    else "A categorical model input: trimmed and case-folded, then the category code the "
                    "model learned (one shared code for categories rare or unseen in training; null, "
                    "empty or left out: missing)."
                ),
            }
            for name, kind in self.kinds.items()
        }


NO_EXTRA_FIELDS = ExtraFields()


@dataclass(frozen=True)
class ExtraInputs:
    """The extra columns a model takes, in column order after the built-in features, with their codes."""

    numeric: tuple[str, ...] = ()
    categorical: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # column -> category -> code

    @property
    def names(self) -> list[str]:
        return [PREFIX + name for name in self.columns]

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @property
    def fields(self) -> ExtraFields:
        return ExtraFields(
            {name: ExtraKind.NUMERIC for name in self.numeric}
            | {name: ExtraKind.CATEGORICAL for name in self.categorical}
        )

    def __bool__(self) -> bool:
        return bool(self.numeric or self.categorical)

    @classmethod
    def learn(
        cls,
        frame: pd.DataFrame,
        numeric: Sequence[str],
        categorical: Sequence[str],
        min_count: int = MIN_COUNT,
    ) -> ExtraInputs:
        """Codes for the categorical columns from `frame` (the training rows only, never the test window)."""
        for name in (*numeric, *categorical):
            if not isinstance(name, str) or EXTRA_NAME.match(name) is None:
                raise ValueError(
                    f"{name!r} cannot be an extra input: names become API fields, so they are 1 to 64 letters, "
                    "digits and underscores, not starting with a digit (rename the column)"
                )
        if len(numeric) + len(categorical) > MAX_EXTRA_FIELDS:
            raise ValueError(f"at most {MAX_EXTRA_FIELDS} extra inputs (a transaction carries that many)")
        codes: dict[str, dict[str, int]] = {}
        for column in categorical:
            raw = frame[column].value_counts(dropna=True)
            folded = pd.Series(
                raw.to_numpy(), index=[normalised(value) for value in raw.index], dtype="int64"
            )
            counts = folded[folded.index.notna()].groupby(level=0).sum()
            frequent = counts[counts >= min_count].index
            codes[column] = {
                str(value): code
                for code, value in enumerate(sorted(frequent, key=lambda v: (-counts[v], v)), start=RARE + 1)
            }
        return cls(tuple(numeric), codes)

    def encode(self, columns: Mapping[str, Sequence[Any] | np.ndarray | None], n: int) -> np.ndarray:
        """[n, len(names)] float32 model inputs from raw values by column (absent columns: missing)."""
        out = np.full((n, len(self.names)), np.nan, dtype=np.float32)
        for j, name in enumerate(self.numeric):
            values = columns.get(name)
            if values is not None:
                out[:, j] = _numbers(values)
        for j, (name, codes) in enumerate(self.categorical.items(), start=len(self.numeric)):
            values = columns.get(name)
            if values is not None:
                out[:, j] = _categories(codes, values)
        return out

    def encode_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Training's side: the frame's columns of these names (a column the frame lacks is missing)."""
        return self.encode(
            {name: frame[name].to_numpy() for name in self.columns if name in frame.columns}, len(frame)
        )

    def encode_rows(self, rows: Sequence[Mapping[str, Any] | None]) -> np.ndarray:
        """Serving's side: each transaction's `extras` object (None: it sent none)."""
        return self.encode(
            {name: [row.get(name) if row else None for row in rows] for name in self.columns}, len(rows)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "encoding_version": ENCODING_VERSION,
            "numeric": list(self.numeric),
            "categorical": {k: dict(v) for k, v in self.categorical.items()},
            "unknown_category_code": RARE,
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any] | None) -> ExtraInputs:
        document = document or {}
        if not document:
            return cls()
        version = document.get("encoding_version", 1)
        if version != ENCODING_VERSION or document.get("unknown_category_code", RARE) != RARE:
            raise ConfigurationError(
                f"the artifact's extra inputs were encoded with version {version} of the extra-input encoding; "
                f"this build encodes with version {ENCODING_VERSION}: retrain the model"
            )
        try:
            return cls(
                tuple(document.get("numeric", ())),
                {
                    str(k): {str(v): int(c) for v, c in m.items()}
                    for k, m in document.get("categorical", {}).items()
                },
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"the artifact's extra_inputs are malformed: {exc}") from exc
