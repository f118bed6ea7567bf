"""The compiled copy of a booster's trees scores as XGBoost does (within 1e-6), or is not used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from fraudops.artifact import ModelArtifact, ModelMetadata
from fraudops.scoring import COMPILED_TOLERANCE, CompiledForest, Scorer


def artifact(booster: xgb.Booster, width: int) -> ModelArtifact:
    metadata = ModelMetadata(
        name="card-fraud",
        version="unit",
        feature_names=[f"f{i}" for i in range(width)],
        feature_version=1,
        threshold=0.5,
        threshold_rule="fixed",
        created_at="now",
    )
    return ModelArtifact(path=Path("."), metadata=metadata, booster=booster)


def rows(count: int, width: int, seed: int) -> np.ndarray:
    generator = np.random.default_rng(seed)
    features = generator.lognormal(0.0, 1.5, size=(count, width)).astype(np.float32)
    features[generator.random(features.shape) < 0.2] = np.nan
    features[generator.random(features.shape) < 0.1] = 0.0
    return features


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    """A deep-ish binary:logistic forest trained on data with missing values."""
    features = rows(4000, 12, seed=1)
    labels = (np.nan_to_num(features[:, 0]) * np.nan_to_num(features[:, 3], nan=2.0) > 1.5).astype(int)
    return xgb.train(
        {"objective": "binary:logistic", "max_depth": 7, "eta": 0.3, "nthread": 1, "base_score": 0.3},
        xgb.DMatrix(features, labels, missing=np.nan),
        num_boost_round=60,
    )


def test_compiled_trees_score_like_xgboost_on_missing_values_and_exact_thresholds(
    booster: xgb.Booster,
) -> None:
    features = rows(5000, 12, seed=2)
    # values exactly on split thresholds take the right branch in XGBoost (`x < threshold` is left)
    thresholds = booster.trees_to_dataframe().dropna(subset=["Split"])
    for i, (_, split) in enumerate(thresholds.head(500).iterrows()):
        features[i, int(split["Feature"][1:])] = np.float32(split["Split"])

    compiled = CompiledForest(booster).probabilities(features)

    expected = booster.inplace_predict(features)
    # float32 arithmetic like XGBoost's: mostly to the last bit, a few rounding steps apart at worst
    assert np.max(np.abs(compiled - expected)) <= COMPILED_TOLERANCE
    assert np.mean(compiled == expected) > 0.5


def test_the_scorer_uses_the_compiled_trees_for_any_batch_size(booster: xgb.Booster) -> None:
    scorer = Scorer(artifact(booster, 12))

    assert scorer.compiled is not None
    for size in (1, 7, 8, 13, 1000):  # blocks of eight rows, and the rows left over
        features = rows(size, 12, seed=size)
        assert (
            np.max(np.abs(scorer.score(features) - booster.inplace_predict(features))) <= COMPILED_TOLERANCE
        )
    assert scorer.score(np.empty((0, 12), dtype=np.float32)).shape == (0,)


def test_a_model_with_categorical_splits_is_scored_by_xgboost_itself() -> None:
    generator = np.random.default_rng(5)
    frame = pd.DataFrame(
        {"kind": pd.Categorical(generator.choice(["a", "b", "c"], 500)), "amount": generator.random(500)}
    )
    labels = (frame["kind"] == "b").astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
        xgb.DMatrix(frame, labels, enable_categorical=True),
        num_boost_round=5,
    )

    with pytest.raises(ValueError, match="categorical"):
        CompiledForest(booster)
    assert Scorer(artifact(booster, 2)).compiled is None


def test_reason_codes_are_xgboost_contributions_of_the_features_that_pushed_up(booster: xgb.Booster) -> None:
    scorer = Scorer(artifact(booster, 12))
    features = rows(5, 12, seed=6)

    reasons = scorer.reasons(features, top_k=3)

    contributions = booster.predict(xgb.DMatrix(features, missing=np.nan), pred_contribs=True)[:, :-1]
    for row, row_reasons in enumerate(reasons):
        top = [i for i in np.argsort(-contributions[row])[:3] if contributions[row, i] > 0]
        assert [r.feature for r in row_reasons] == [f"f{i}" for i in top]
        assert [r.contribution for r in row_reasons] == pytest.approx(
            [float(contributions[row, i]) for i in top]
        )


@pytest.mark.parametrize("exact", [True, False])
def test_each_reason_names_the_features_value_none_where_it_was_missing_and_pushes_up(
    booster: xgb.Booster, exact: bool
) -> None:
    scorer = Scorer(artifact(booster, 12))
    features = rows(300, 12, seed=9)

    reasons = scorer.reasons(features, top_k=3, exact=exact)

    assert len(reasons) == 300
    missing = 0
    for row, row_reasons in enumerate(reasons):
        assert len(row_reasons) <= 3
        pushes = [r.contribution for r in row_reasons]
        assert pushes == sorted(pushes, reverse=True) and all(push > 0 for push in pushes)
        for reason in row_reasons:
            value = features[row, int(reason.feature[1:])]
            if np.isnan(value):
                assert reason.value is None
                missing += 1
            else:
                assert reason.value == float(value) and type(reason.value) is float
            assert type(reason.contribution) is float
        assert [r.as_dict()["feature"] for r in row_reasons] == [r.feature for r in row_reasons]
    assert missing > 0  # the rows' 20% missing values reach some reasons: the None case is exercised


def test_compiled_approximate_contributions_equal_xgboosts(booster: xgb.Booster) -> None:
    features = rows(2000, 12, seed=7)

    compiled = CompiledForest(booster).contributions(features)

    expected = booster.predict(
        xgb.DMatrix(features, missing=np.nan), pred_contribs=True, approx_contribs=True
    )
    assert compiled.shape == expected.shape == (2000, 13)
    np.testing.assert_allclose(compiled, expected, atol=1e-5)
    margins = booster.predict(xgb.DMatrix(features, missing=np.nan), output_margin=True)
    np.testing.assert_allclose(compiled.sum(axis=1), margins, atol=1e-5)  # they add up to the margin


def test_fast_reason_codes_come_from_the_compiled_trees_and_match_xgboosts_approximation(
    booster: xgb.Booster,
) -> None:
    scorer = Scorer(artifact(booster, 12))
    features = rows(50, 12, seed=8)

    reasons = scorer.reasons(features, top_k=3, exact=False)

    contributions = booster.predict(
        xgb.DMatrix(features, missing=np.nan), pred_contribs=True, approx_contribs=True
    )[:, :-1]
    for row, row_reasons in enumerate(reasons):
        top = [i for i in np.argsort(-contributions[row])[:3] if contributions[row, i] > 1e-4]
        assert [r.feature for r in row_reasons][: len(top)] == [f"f{i}" for i in top]
        assert [r.contribution for r in row_reasons][: len(top)] == pytest.approx(
            [float(contributions[row, i]) for i in top], abs=1e-5
        )
