"""How the model holds up away from its training data: by month, by customer tenure, and calendar proxies.

Pure functions over held-out labels, scores and the rows they belong to. A "calendar proxy" is a
feature the model relies on whose values tell the training period from the test period by
themselves (a clock in disguise): it will drift in production however well it scored here.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

TENURE_BUCKETS_DAYS = (0, 7, 30, 90, np.inf)
#: Flag a feature when its values alone tell train from test this well (0 = not at all, 1 = perfectly)...
PROXY_SEPARABILITY = 0.6
#: ...and it carries at least this share of the model's total gain.
PROXY_IMPORTANCE_SHARE = 0.02


def _quality(group: pd.DataFrame) -> pd.Series:
    labels, scores = group["label"].to_numpy(), group["score"].to_numpy()
    both = 0 < labels.sum() < len(labels)
    return pd.Series(
        {
            "transactions": len(group),
            "frauds": int(labels.sum()),
            "average_precision": float(average_precision_score(labels, scores)) if both else np.nan,
            "roc_auc": float(roc_auc_score(labels, scores)) if both else np.nan,
        }
    )


def by_month(
    times: pd.Series, labels: np.ndarray, scores: np.ndarray, pattern: str = "%Y-%m"
) -> pd.DataFrame:
    """Quality per calendar month (or ISO week, with pattern "%G-W%V") of the held-out window: does it decay?"""
    frame = pd.DataFrame(
        {
            "period": times.dt.tz_convert("UTC").dt.strftime(pattern).to_numpy(),
            "label": labels,
            "score": scores,
        }
    )
    return frame.groupby("period", sort=True)[["label", "score"]].apply(_quality)


def tenure_days(history: pd.DataFrame) -> np.ndarray:
    """Days since the account was opened when known, else since the customer's first row in the data."""
    first_seen = history.groupby("customer_id", observed=True, sort=False)["event_time"].transform("min")
    since = history["event_time"] - first_seen
    if "account_opened_at" in history.columns:
        opened = history["event_time"] - history["account_opened_at"]
        since = opened.where(history["account_opened_at"].notna(), since)
    return (since.dt.total_seconds() / 86_400).to_numpy()


def by_tenure(tenure: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """Quality by customer tenure: new customers have no history for the model to compare with."""
    edges = TENURE_BUCKETS_DAYS
    names = [f"{lo:g}–{hi:g} d" if np.isfinite(hi) else f"≥ {lo:g} d" for lo, hi in pairwise(edges)]
    bucket = pd.cut(tenure, bins=list(edges), right=False, labels=names)
    frame = pd.DataFrame({"tenure": bucket, "label": labels, "score": scores})
    return frame.groupby("tenure", observed=True, sort=True)[["label", "score"]].apply(_quality)


def period_separability(train: np.ndarray, test: np.ndarray) -> float:
    """|2·AUC − 1| of a feature's values for "is this row from the test period" (NaN counts as a value)."""
    values = np.concatenate([train, test]).astype(np.float64)
    values = np.where(np.isnan(values), np.nanmin(values) - 1.0 if np.isfinite(values).any() else 0.0, values)
    is_test = np.concatenate([np.zeros(len(train)), np.ones(len(test))])
    if values.min() == values.max():
        return 0.0
    return abs(2.0 * roc_auc_score(is_test, values) - 1.0)


def calendar_proxies(
    names: list[str],
    train: np.ndarray,
    test: np.ndarray,
    importance: pd.Series,
    sample: int = 20_000,
    seed: int = 0,
) -> pd.DataFrame:
    """Features the model relies on whose values alone separate the training period from the test period.

    Returns one row per feature with enough importance: its gain share, its period separability, and
    whether it is flagged.
    """
    rng = np.random.default_rng(seed)
    train = train[rng.choice(len(train), min(sample, len(train)), replace=False)]
    test = test[rng.choice(len(test), min(sample, len(test)), replace=False)]
    share = (importance / importance.sum()).reindex(names).fillna(0.0)
    rows = []
    for column, name in enumerate(names):
        if share[name] < PROXY_IMPORTANCE_SHARE / 4:
            continue
        separability = period_separability(train[:, column], test[:, column])
        rows.append(
            {
                "feature": name,
                "importance_share": float(share[name]),
                "period_separability": separability,
                "flagged": bool(separability >= PROXY_SEPARABILITY and share[name] >= PROXY_IMPORTANCE_SHARE),
            }
        )
    table = pd.DataFrame(rows, columns=["feature", "importance_share", "period_separability", "flagged"])
    return table.sort_values("importance_share", ascending=False).reset_index(drop=True)
