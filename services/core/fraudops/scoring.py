"""Scoring a feature matrix with a model artifact, and explaining decisions with TreeSHAP reason codes.

One XGBoost thread per process: on two cores, two threads make small batches much slower, and
the services get their parallelism from processes and batching instead.

Rows are scored by a compiled copy of the booster's trees (`CompiledForest`, a numba loop over
flat node arrays, laid out for a branch-free walk): XGBoost's `inplace_predict` spends ~250 µs of
fixed cost per call, which is most of a gateway request, while the compiled walk of one row takes
~20 µs (261 trees of depth 7), and on batches of 1,000 rows it is ~25% faster per row than
XGBoost's own blocked traversal (10.1 vs 13.6 µs on the reference machine). The copy does XGBoost's float32 arithmetic (scores equal to the last bit on the trained models here, a
few float32 rounding steps apart at worst, never more than COMPILED_TOLERANCE), is checked against
the booster when it is built, and is not used when the model has something it does not implement
(categorical splits, several outputs). Reason codes are XGBoost's exact TreeSHAP (`pred_contribs`),
or its fast approximation (per-path contributions), which the compiled copy also computes — the
same numbers without XGBoost's ~300 µs of fixed cost per call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numba as nb
import numpy as np
import xgboost as xgb

from fraudops.artifact import ModelArtifact
from fraudops.extras import ExtraFields, ExtraInputs

log = logging.getLogger(__name__)

#: Largest difference from XGBoost's own scores the compiled trees may show on the self-check.
COMPILED_TOLERANCE = 1e-6


class Reason(NamedTuple):
    """One feature's push towards (positive) or away from (negative) fraud, in log-odds.

    A named tuple: an alert storm explains thousands of rows a batch, and a tuple is built about twice
    as fast as a frozen dataclass (0.7 against 1.5 µs here)."""

    feature: str
    value: float | None
    contribution: float

    def as_dict(self) -> dict[str, float | str | None]:
        return {"feature": self.feature, "value": self.value, "contribution": round(self.contribution, 4)}


# The compiled trees are laid out for a branch-free walk. Each tree is renumbered breadth first, so
# a node's children are neighbours (`child`, `child + 1`) and one step is `node = child[node] +
# go_right` with no branch to mispredict. A leaf is its own child and its threshold is NaN, so
# walking on from a leaf stays there: every row takes exactly `depth[tree]` steps, so several rows
# can advance side by side (independent loads the CPU overlaps) while one tree stays in cache.
# go_right is XGBoost's rule: `not x < threshold` for a number, the default direction for NaN.
@nb.njit(cache=True, nogil=True, inline="always")
def _step(
    x: np.float32, node: np.int32, child: np.ndarray, threshold: np.ndarray, missing_right: np.ndarray
) -> int:
    return child[node] + ((x >= threshold[node]) | ((x != x) & missing_right[node]))


@nb.njit(cache=True, nogil=True)
def _forest_probabilities(
    features: np.ndarray,
    roots: np.ndarray,
    depth: np.ndarray,
    child: np.ndarray,
    split_feature: np.ndarray,
    threshold: np.ndarray,
    missing_right: np.ndarray,
    leaf_value: np.ndarray,
    base_margin: np.float32,
    out: np.ndarray,
) -> None:
    # XGBoost's own arithmetic: float32 comparisons, leaf values added to the base margin in float32
    # in tree order, then the logistic in float32. Eight rows walk each tree side by side (eight
    # independent chains of loads in registers); the rest one by one.
    one = np.float32(1.0)
    rows = features.shape[0]
    f = features
    for s in range(0, rows - rows % 8, 8):
        m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = base_margin
        for tree in range(roots.shape[0]):
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = roots[tree]
            for _ in range(depth[tree]):
                a0 = _step(f[s, split_feature[a0]], a0, child, threshold, missing_right)
                a1 = _step(f[s + 1, split_feature[a1]], a1, child, threshold, missing_right)
                a2 = _step(f[s + 2, split_feature[a2]], a2, child, threshold, missing_right)
                a3 = _step(f[s + 3, split_feature[a3]], a3, child, threshold, missing_right)
                a4 = _step(f[s + 4, split_feature[a4]], a4, child, threshold, missing_right)
                a5 = _step(f[s + 5, split_feature[a5]], a5, child, threshold, missing_right)
                a6 = _step(f[s + 6, split_feature[a6]], a6, child, threshold, missing_right)
                a7 = _step(f[s + 7, split_feature[a7]], a7, child, threshold, missing_right)
            m0 += leaf_value[a0]
            m1 += leaf_value[a1]
            m2 += leaf_value[a2]
            m3 += leaf_value[a3]
            m4 += leaf_value[a4]
            m5 += leaf_value[a5]
            m6 += leaf_value[a6]
            m7 += leaf_value[a7]
        for r, m in enumerate((m0, m1, m2, m3, m4, m5, m6, m7)):
            out[s + r] = one / (one + np.exp(-m))
    for row in range(rows - rows % 8, rows):
        margin = base_margin
        for tree in range(roots.shape[0]):
            node = roots[tree]
            for _ in range(depth[tree]):
                node = _step(f[row, split_feature[node]], node, child, threshold, missing_right)
            margin = margin + leaf_value[node]
        out[row] = one / (one + np.exp(-margin))


@nb.njit(cache=True, nogil=True)
def _forest_contributions(
    features: np.ndarray,
    roots: np.ndarray,
    depth: np.ndarray,
    child: np.ndarray,
    split_feature: np.ndarray,
    threshold: np.ndarray,
    missing_right: np.ndarray,
    mean_value: np.ndarray,
    out: np.ndarray,
) -> None:
    # XGBoost's CalculateContributionsApprox: along each row's path, the change of the node's mean
    # value (cover-weighted mean of its leaves) is credited to the feature split on; the root's mean
    # goes to the bias column (the last one). Steps from a leaf to itself credit nothing.
    bias = out.shape[1] - 1
    for row in range(features.shape[0]):
        for tree in range(roots.shape[0]):
            node = roots[tree]
            out[row, bias] += mean_value[node]
            for _ in range(depth[tree]):
                feature = split_feature[node]
                following = _step(features[row, feature], node, child, threshold, missing_right)
                if following != node:
                    out[row, feature] += mean_value[following] - mean_value[node]
                node = following


def _mean_values(
    lefts: np.ndarray, rights: np.ndarray, values: np.ndarray, hessians: np.ndarray
) -> np.ndarray:
    """Each node's cover-weighted mean of its leaves' values (XGBoost's FillNodeMeanValues, in float32)."""
    mean = values.astype(np.float32).copy()
    for node in range(len(lefts) - 1, -1, -1):  # children are numbered after their parent
        if lefts[node] >= 0:
            left, right = lefts[node], rights[node]
            mean[node] = np.float32(
                (mean[left] * hessians[left] + mean[right] * hessians[right]) / hessians[node]
            )
    return mean


@dataclass
class _Tree:
    """One tree renumbered breadth first (children side by side), in the branch-free layout."""

    depth: int
    child: np.ndarray
    split_feature: np.ndarray
    threshold: np.ndarray
    missing_right: np.ndarray
    leaf_value: np.ndarray
    mean_value: np.ndarray

    @classmethod
    def from_json(cls, tree: dict) -> _Tree:
        lefts = np.asarray(tree["left_children"], dtype=np.int32)
        rights = np.asarray(tree["right_children"], dtype=np.int32)
        # For a leaf, split_conditions holds the leaf value (XGBoost's JSON model format).
        conditions = np.asarray(tree["split_conditions"], dtype=np.float32)
        means = _mean_values(lefts, rights, conditions, np.asarray(tree["sum_hessian"], np.float32))
        order, levels = [0], [0]  # old node numbers in breadth-first order, and their depths
        for position, old in enumerate(order):  # grows while iterating
            if lefts[old] >= 0:
                order.extend((lefts[old], rights[old]))
                levels.extend((levels[position] + 1,) * 2)
        order_array = np.asarray(order, dtype=np.int64)
        new_number = np.empty(len(lefts), dtype=np.int32)
        new_number[order_array] = np.arange(len(order), dtype=np.int32)
        leaf = lefts[order_array] < 0
        return cls(
            depth=max(levels),
            child=np.where(leaf, np.arange(len(order)), new_number[np.maximum(lefts[order_array], 0)]).astype(
                np.int32
            ),
            split_feature=np.where(leaf, 0, np.asarray(tree["split_indices"], dtype=np.int32)[order_array]),
            threshold=np.where(leaf, np.float32(np.nan), conditions[order_array]).astype(np.float32),
            missing_right=~leaf & ~np.asarray(tree["default_left"], dtype=np.bool_)[order_array],
            leaf_value=np.where(leaf, conditions[order_array], np.float32(0)).astype(np.float32),
            mean_value=means[order_array],
        )


class CompiledForest:
    """The trees of a binary:logistic booster as flat arrays (see the layout above)."""

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
        laid_out = [_Tree.from_json(tree) for tree in trees]
        sizes = np.asarray([len(tree.child) for tree in laid_out], dtype=np.int32)
        self.roots = (np.cumsum(sizes) - sizes).astype(np.int32)
        self.depth = np.asarray([tree.depth for tree in laid_out], dtype=np.int32)
        self.child = np.concatenate(
            [tree.child + root for tree, root in zip(laid_out, self.roots, strict=True)]
        )
        self.split_feature = np.concatenate([tree.split_feature for tree in laid_out]).astype(np.int32)
        self.threshold = np.concatenate([tree.threshold for tree in laid_out])
        self.missing_right = np.concatenate([tree.missing_right for tree in laid_out])
        self.leaf_value = np.concatenate([tree.leaf_value for tree in laid_out])
        self.mean_value = np.concatenate([tree.mean_value for tree in laid_out])
        base_score = np.float32(float(str(params["base_score"]).strip("[]")))
        # LogisticRegression::ProbToMargin, in float32 as XGBoost computes it.
        self.base_margin = np.float32(-np.log(np.float32(1.0) / base_score - np.float32(1.0)))

    def _rows(self, features: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(features, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise ValueError(f"features must have shape [n, {self.width}], got {list(rows.shape)}")
        return rows

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        rows = self._rows(features)
        out = np.empty(len(rows), dtype=np.float32)
        _forest_probabilities(
            rows,
            self.roots,
            self.depth,
            self.child,
            self.split_feature,
            self.threshold,
            self.missing_right,
            self.leaf_value,
            self.base_margin,
            out,
        )
        return out

    def contributions(self, features: np.ndarray) -> np.ndarray:
        """XGBoost's approximate contributions (`pred_contribs` with `approx_contribs`), bias column last."""
        rows = self._rows(features)
        out = np.zeros((len(rows), self.width + 1), dtype=np.float32)
        _forest_contributions(
            rows,
            self.roots,
            self.depth,
            self.child,
            self.split_feature,
            self.threshold,
            self.missing_right,
            self.mean_value,
            out,
        )
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
        #: the columns after the built-in features, from each transaction's `extras` (most models: none)
        self.extra_inputs = ExtraInputs.from_dict(artifact.metadata.extra_inputs)
        self.extra_fields: ExtraFields = self.extra_inputs.fields
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
            log.warning(
                "compiled trees disagree with XGBoost; scoring with XGBoost itself",
                extra={"max_difference": difference},
            )
            return None
        return forest

    @property
    def model_name(self) -> str:
        return self.artifact.name

    @property
    def model_version(self) -> str:
        return self.artifact.version

    def model_rows(self, features: np.ndarray, extras: Sequence[Mapping[str, Any] | None]) -> np.ndarray:
        """The model's input rows: the built-in features, then the transactions' extra fields encoded as
        training encoded them (`ExtraInputs.encode`). A model without extra inputs takes `features` as
        they are."""
        if not self.extra_inputs:
            return features
        return np.hstack([features, self.extra_inputs.encode_rows(extras)])

    def score(
        self, features: np.ndarray, extras: Sequence[Mapping[str, Any] | None] | None = None
    ) -> np.ndarray:
        """Fraud probability per row: `features` are the model's input rows (float32, in the metadata's
        order), or, with `extras`, the built-in features whose extra fields `model_rows` adds."""
        if extras is not None:
            features = self.model_rows(features, extras)
        if len(features) == 0:
            return np.empty(0, dtype=np.float32)
        if self.compiled is not None:
            return self.compiled.probabilities(features)
        return self.booster.inplace_predict(features, validate_features=False).astype(np.float32)

    def reasons(
        self,
        features: np.ndarray,
        top_k: int = 3,
        exact: bool = True,
        extras: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[list[Reason]]:
        """The `top_k` features that pushed each row's score up the most (`features` as for `score`).

        `exact`: XGBoost's TreeSHAP (~10 ms a row for a 400-tree, depth-9 forest); otherwise XGBoost's
        approximate per-path contributions (Saabas, ~0.05 ms a row), which the stream uses for alerts:
        at tens of thousands of transactions a second, exact SHAP on every alert would be the bottleneck.
        """
        if extras is not None:
            features = self.model_rows(features, extras)
        if len(features) == 0:
            return []
        if not exact and self.compiled is not None:
            contributions = self.compiled.contributions(features)[:, :-1]
        else:
            # nthread=1 here too: a DMatrix built with every core costs milliseconds for one row.
            matrix = xgb.DMatrix(features, missing=np.nan, nthread=1)
            contributions = self.booster.predict(matrix, pred_contribs=True, approx_contribs=not exact)[
                :, :-1
            ]
        order = np.argsort(-contributions, axis=1)[:, :top_k]
        # the top columns' pushes and values gathered in C, as Python floats (the same numbers `float()` of
        # each cell gives): an alert storm explains thousands of rows a batch, ~15 µs a row element by element
        pushes = np.take_along_axis(contributions, order, axis=1).tolist()
        values = np.take_along_axis(np.asarray(features), order, axis=1).tolist()
        names = self.feature_names
        out = []
        for columns, row_pushes, row_values in zip(order.tolist(), pushes, values, strict=True):
            reasons = []
            for column, contribution, value in zip(columns, row_pushes, row_values, strict=True):
                if contribution <= 0:
                    break
                # a missing value (NaN, the only float unequal to itself) is reported as None
                reasons.append(Reason(names[column], None if value != value else value, contribution))
            out.append(reasons)
        return out
