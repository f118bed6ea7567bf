"""The baselines every report shows beside the model, trained on exactly the same rows and weights.

* untuned XGBoost: our features, XGBoost's textbook defaults (depth 6, eta 0.3, 100 rounds): what
  tuning adds;
* textbook XGBoost: the same untuned XGBoost on the fifteen textbook features (`textbook.py`): what
  our features add over what a careful analyst builds in a day; the model must beat it;
* amount-only logistic regression: the floor, one feature.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from fraudops_training.textbook import TEXTBOOK_FEATURES
from fraudops_training.tuning import Sample, fit

UNTUNED = "untuned XGBoost"
TEXTBOOK = "textbook XGBoost"
AMOUNT_ONLY = "amount-only logistic regression"
UNTUNED_PARAMS = {"max_depth": 6, "eta": 0.3}
UNTUNED_ROUNDS = 100


def untuned_scores(train: Sample, names: list[str], scored: np.ndarray, seed: int) -> np.ndarray:
    booster = fit(train, names, UNTUNED_PARAMS, rounds=UNTUNED_ROUNDS, seed=seed)
    return booster.inplace_predict(scored)


def textbook_scores(train: Sample, scored: np.ndarray, seed: int) -> np.ndarray:
    """`train.features` and `scored` hold the textbook features of the same rows."""
    return untuned_scores(train, list(TEXTBOOK_FEATURES), scored, seed)


def amount_only_scores(train: Sample, scored: np.ndarray) -> np.ndarray:
    """`train.features` and `scored`: a single column, the amount."""
    model = LogisticRegression(max_iter=500)
    model.fit(np.log1p(train.features[:, [0]]), train.labels, sample_weight=train.weights)
    return model.predict_proba(np.log1p(scored[:, [0]]))[:, 1]
