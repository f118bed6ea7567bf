"""Extra model inputs: columns of a bank's export we did not foresee (MCC, POS entry mode, 3-D Secure...).

A training run names them (`--extra-numeric`, `--extra-categorical`); the categorical ones get codes
learned from the training rows — every value seen at least `min_count` times gets its own code, by
frequency; rarer values share the "rare" code, and so does any value first seen at serving — and
those codes travel in the artifact, so serving applies exactly the mapping training used. Values are
compared trimmed and case-folded on both sides. Nothing collapses silently into a built-in OTHER.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fraudops.errors import ConfigurationError

PREFIX = "extra_"
RARE = 0  # the code of values seen fewer than min_count times in training, and of values never seen
MIN_COUNT = 20


def normalised(value: Any) -> str:
    return str(value).strip().casefold()


@dataclass(frozen=True)
class ExtraInputs:
    """The extra columns a model takes, in column order after the built-in features."""

    numeric: tuple[str, ...] = ()
    categorical: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # column -> value -> code

    @property
    def names(self) -> list[str]:
        return [PREFIX + name for name in (*self.numeric, *self.categorical)]

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
        codes: dict[str, dict[str, int]] = {}
        for column in categorical:
            counts = frame[column].dropna().astype(str).map(normalised).value_counts()
            frequent = counts[counts >= min_count].index
            codes[column] = {
                value: code
                for code, value in enumerate(sorted(frequent, key=lambda v: (-counts[v], v)), start=RARE + 1)
            }
        return cls(tuple(numeric), codes)

    def encode(self, columns: Mapping[str, Any], n: int) -> np.ndarray:
        """[n, len(names)] float32: numbers as given (NaN where missing or not a number), categories as codes."""
        out = np.full((n, len(self.names)), np.nan, dtype=np.float32)
        for j, name in enumerate(self.numeric):
            if columns.get(name) is not None:
                out[:, j] = pd.to_numeric(pd.Series(np.asarray(columns[name], dtype=object)), errors="coerce")
        for j, (name, mapping) in enumerate(self.categorical.items(), start=len(self.numeric)):
            values = columns.get(name)
            if values is None:
                continue
            series = pd.Series(np.asarray(values, dtype=object))
            present = series.notna().to_numpy()
            folded = series[present].astype(str).map(normalised)
            out[present, j] = folded.map(mapping).fillna(RARE).to_numpy(dtype=np.float32)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "numeric": list(self.numeric),
            "categorical": {k: dict(v) for k, v in self.categorical.items()},
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any] | None) -> ExtraInputs:
        document = document or {}
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
