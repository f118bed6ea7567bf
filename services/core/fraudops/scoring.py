"""Scoring a feature matrix with a model artifact, and explaining decisions with TreeSHAP reason codes.

One XGBoost thread per process: on two cores, two threads make small batches much slower, and
the services get their parallelism from processes and batching instead.

Small batches are scored by a compiled copy of the booster's trees (`CompiledForest`, a numba loop
over flat node arrays): XGBoost's `inplace_predict` spends ~250 µs of fixed cost per call, which is
most of a gateway request, while the compiled walk of one row takes 3 µs (51 trees) to 30 µs (400
trees). XGBoost's blocked traversal wins on big batches, which therefore still go to XGBoost. The
copy does XGBoost's float32 arithmetic (scores equal to the last bit on the trained models here, a
few float32 rounding steps apart at worst, never more than COMPILED_TOLERANCE), is checked against
the booster when it is built, and is not used when the model has something it does not implement
(categorical splits, several outputs). Reason codes are XGBoost's exact TreeSHAP (`pred_contribs`),
or its fast approximation (per-path contributions), which the compiled copy also computes — the
same numbers without XGBoost's ~300 µs of fixed cost per call.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numba as nb
import numpy as np
import xgboost as xgb

from fraudops.artifact import ModelArtifact

log = logging.getLogger(__name__)

#: Largest difference from XGBoost's own scores the compiled trees may show on the self-check.
COMPILED_TOLERANCE = 1e-6
#: Batches at least this big go to XGBoost: measured here, the crossover lies between 128 and 1,000 rows.
COMPILED_MAX_ROWS = 256


@dataclass(frozen=True)
class Reason:
    """One feature's push towards (positive) or away from (negative) fraud, in log-odds."""

    feature: str
    value: float | None
    contribution: float

    def as_dict(self) -> dict[str, float | str | None]:
        return {"feature": self.feature, "value": self.value, "contribution": round(self.contribution, 4)}


@nb.njit(cache=True, nogil=True)
def _forest_probabilities(features: np.ndarray, roots: np.ndarray, left: np.ndarray, right: np.ndarray,
                          split_feature: np.ndarray, threshold: np.ndarray, default_left: np.ndarray,
                          value: np.ndarray, base_margin: np.float32, out: np.ndarray) -> None:
    # XGBoost's own arithmetic: float32 comparisons `x < threshold` (NaN takes the default branch),
    # leaf values added to the base margin in float32 in tree order, then the logistic in float32.
    one = np.float32(1.0)
    for row in range(features.shape[0]):
        margin = base_margin
        for tree in range(roots.shape[0]):
            node = roots[tree]
            while left[node] >= 0:
                x = features[row, split_feature[node]]
                if np.isnan(x):
                    node = left[node] if default_left[node] else right[node]
                elif x < threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
            margin = margin + value[node]
        out[row] = one / (one + np.exp(-margin))


@nb.njit(cache=True, nogil=True)
def _forest_contributions(features: np.ndarray, roots: np.ndarray, left: np.ndarray, right: np.ndarray,
                          split_feature: np.ndarray, threshold: np.ndarray, default_left: np.ndarray,
                          mean_value: np.ndarray, out: np.ndarray) -> None:
    # XGBoost's CalculateContributionsApprox: along each row's path, the change of the node's mean
    # value (cover-weighted mean of its leaves) is credited to the feature split on; the root's mean
    # goes to the bias column (the last one).
    bias = out.shape[1] - 1
    for row in range(features.shape[0]):
        for tree in range(roots.shape[0]):
            node = roots[tree]
            node_value = mean_value[node]
            out[row, bias] += node_value
            while left[node] >= 0:
                feature = split_feature[node]
                x = features[row, feature]
                if np.isnan(x):
                    node = left[node] if default_left[node] else right[node]
                elif x < threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
                out[row, feature] += mean_value[node] - node_value
                node_value = mean_value[node]


def _mean_values(lefts: np.ndarray, rights: np.ndarray, values: np.ndarray, hessians: np.ndarray) -> np.ndarray:
    """Each node's cover-weighted mean of its leaves' values (XGBoost's FillNodeMeanValues, in float32)."""
    mean = values.astype(np.float32).copy()
    for node in range(len(lefts) - 1, -1, -1):  # children are numbered after their parent
        if lefts[node] >= 0:
            left, right = lefts[node], rights[node]
            mean[node] = np.float32((mean[left] * hessians[left] + mean[right] * hessians[right]) / hessians[node])
    return mean


class CompiledForest:
    """The trees of a binary:logistic booster as flat arrays (children as absolute node numbers)."""

    def __init__(self, booster: xgb.Booster) -> None:
        model = json.loads(booster.save_raw(raw_format="json"))
        learner = model["learner"]
        if learner["objective"]["name"] != "binary:logistic":
            raise ValueError(f"objective {learner['objective']['name']} is not binary:logistic")
        params = learner["learner_model_param"]
        if int(params.get("num_target", 1)) != 1 or int(params.get("num_class", 0)) > 1:
            raise ValueError("the model has several outputs")
        trees = learner["gradient_booster"]["model"]["trees"]
        if any(kind != 0 for tree in trees for kind in tree["split_type"]):
            raise ValueError("the model has categorical splits")
        self.width = int(params["num_feature"])
        roots, left, right, feature, threshold, default_left, means = [], [], [], [], [], [], []
        offset = 0
        for tree in trees:
            roots.append(offset)
            lefts = np.asarray(tree["left_children"], dtype=np.int32)
            rights = np.asarray(tree["right_children"], dtype=np.int32)
            left.append(np.where(lefts >= 0, lefts + offset, -1))
            right.append(np.where(rights >= 0, rights + offset, -1))
            feature.append(np.asarray(tree["split_indices"], dtype=np.int32))
            # For a leaf, split_conditions holds the leaf value (XGBoost's JSON model format).
            threshold.append(np.asarray(tree["split_conditions"], dtype=np.float32))
            default_left.append(np.asarray(tree["default_left"], dtype=np.bool_))
            means.append(_mean_values(lefts, rights, threshold[-1], np.asarray(tree["sum_hessian"], np.float32)))
            offset += len(lefts)
        self.roots = np.asarray(roots, dtype=np.int32)
        self.left = np.concatenate(left).astype(np.int32)
        self.right = np.concatenate(right).astype(np.int32)
        self.split_feature = np.concatenate(feature)
        self.threshold = np.concatenate(threshold)  # a leaf's entry is its value
        self.default_left = np.concatenate(default_left)
        self.mean_value = np.concatenate(means)
        base_score = np.float32(float(str(params["base_score"]).strip("[]")))
        # LogisticRegression::ProbToMargin, in float32 as XGBoost computes it.
        self.base_margin = np.float32(-np.log(np.float32(1.0) / base_score - np.float32(1.0)))

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(features, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise ValueError(f"features must have shape [n, {self.width}], got {list(rows.shape)}")
        out = np.empty(len(rows), dtype=np.float32)
        _forest_probabilities(rows, self.roots, self.left, self.right, self.split_feature, self.threshold,
                              self.default_left, self.threshold, self.base_margin, out)
        return out

    def contributions(self, features: np.ndarray) -> np.ndarray:
        """XGBoost's approximate contributions (`pred_contribs` with `approx_contribs`), bias column last."""
        rows = np.ascontiguousarray(features, dtype=np.float32)
        out = np.zeros((len(rows), self.width + 1), dtype=np.float32)
        _forest_contributions(rows, self.roots, self.left, self.right, self.split_feature, self.threshold,
                              self.default_left, self.mean_value, out)
        out[:, -1] += self.base_margin
        return out


def _probe_rows(width: int, rows: int = 512, seed: int = 0) -> np.ndarray:
    """Rows that reach many leaves: a mix of scales, zeros and missing values."""
    generator = np.random.default_rng(seed)
    probe = generator.lognormal(0.0, 2.0, size=(rows, width)).astype(np.float32)
    probe[generator.random(probe.shape) < 0.3] = 0.0
    probe[generator.random(probe.shape) < 0.15] = np.nan
    return probe


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
        self.compiled = self._compile()

    def _compile(self) -> CompiledForest | None:
        try:
            forest = CompiledForest(self.booster)
        except ValueError as exc:
            log.info("scoring with XGBoost itself", extra={"reason": str(exc)})
            return None
        probe = _probe_rows(forest.width)
        expected = self.booster.inplace_predict(probe, validate_features=False)
        difference = float(np.max(np.abs(forest.probabilities(probe) - expected)))
        if difference > COMPILED_TOLERANCE:
            log.warning("compiled trees disagree with XGBoost; scoring with XGBoost itself",
                        extra={"max_difference": difference})
            return None
        return forest

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
        # The compiled walk wins on small batches (no fixed cost); XGBoost's blocked traversal wins on big ones.
        if self.compiled is not None and len(features) < COMPILED_MAX_ROWS:
            return self.compiled.probabilities(features)
        return self.booster.inplace_predict(features, validate_features=False).astype(np.float32)

    def reasons(self, features: np.ndarray, top_k: int = 3, exact: bool = True) -> list[list[Reason]]:
        """The `top_k` features that pushed each row's score up the most.

        `exact`: XGBoost's TreeSHAP (~10 ms a row for a 400-tree, depth-9 forest); otherwise XGBoost's
        approximate per-path contributions (Saabas, ~0.05 ms a row), which the stream uses for alerts:
        at tens of thousands of transactions a second, exact SHAP on every alert would be the bottleneck.
        """
        if len(features) == 0:
            return []
        if not exact and self.compiled is not None:
            contributions = self.compiled.contributions(features)[:, :-1]
        else:
            # nthread=1 here too: a DMatrix built with every core costs milliseconds for one row.
            matrix = xgb.DMatrix(features, missing=np.nan, nthread=1)
            contributions = self.booster.predict(matrix, pred_contribs=True, approx_contribs=not exact)[:, :-1]
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
