"""Scoring a feature matrix with a model artifact, and explaining decisions with TreeSHAP reason codes.

One XGBoost thread per process: on two cores, two threads make small batches much slower, and
the services get their parallelism from processes and batching instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xgboost as xgb

from fraudops.artifact import ModelArtifact


@dataclass(frozen=True)
class Reason:
    """One feature's push towards (positive) or away from (negative) fraud, in log-odds."""

    feature: str
    value: float | None
    contribution: float

    def as_dict(self) -> dict[str, float | str | None]:
        return {"feature": self.feature, "value": self.value, "contribution": round(self.contribution, 4)}


class Scorer:
    """Fraud probabilities and reason codes from one model artifact."""

    def __init__(self, artifact: ModelArtifact) -> None:
        self.artifact = artifact
        self.booster = artifact.booster
        self.booster.set_param({"nthread": 1})
        # Rows arrive as bare arrays in metadata order; names on the booster would make XGBoost refuse them.
        self.booster.feature_names = None
        self.booster.feature_types = None
        self.feature_names = list(artifact.metadata.feature_names)
        self.threshold = float(artifact.metadata.threshold)

    @property
    def model_name(self) -> str:
        return self.artifact.name

    @property
    def model_version(self) -> str:
        return self.artifact.version

    def score(self, features: np.ndarray) -> np.ndarray:
        """Fraud probability per row (float32 features in Feature order)."""
        if len(features) == 0:
            return np.empty(0, dtype=np.float32)
        return self.booster.inplace_predict(features, validate_features=False).astype(np.float32)

    def reasons(self, features: np.ndarray, top_k: int = 3) -> list[list[Reason]]:
        """The `top_k` features that pushed each row's score up the most (TreeSHAP contributions)."""
        if len(features) == 0:
            return []
        contributions = self.booster.predict(xgb.DMatrix(features, missing=np.nan), pred_contribs=True)[:, :-1]
        order = np.argsort(-contributions, axis=1)[:, :top_k]
        out = []
        for row, columns in enumerate(order):
            reasons = []
            for column in columns:
                contribution = float(contributions[row, column])
                if contribution <= 0:
                    break
                value = float(features[row, column])
                reasons.append(Reason(self.feature_names[column], None if np.isnan(value) else value, contribution))
            out.append(reasons)
        return out
