"""Metrics a fraud team reads: ranking quality, the chosen operating point, review-queue precision, cost.

Pure functions over arrays of labels and scores; the report and the registry consume their output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve


@dataclass(frozen=True)
class ThresholdRule:
    """How the decision threshold is chosen: `cost` (minimum expected cost) or `precision` (target)."""

    kind: str = "cost"
    cost_missed_fraud: float = 100.0
    cost_false_alert: float = 5.0
    target_precision: float = 0.9

    def describe(self) -> str:
        if self.kind == "precision":
            return (
                f"lowest threshold whose validation precision reaches {self.target_precision:.0%} "
                "(most frauds caught at that precision)"
            )
        return (
            f"minimum expected cost on the validation window, with a missed fraud costing "
            f"{self.cost_missed_fraud:g} and a false alert {self.cost_false_alert:g}"
        )


def choose_threshold(labels: np.ndarray, scores: np.ndarray, rule: ThresholdRule) -> float:
    """The threshold the rule picks on validation data (never on the held-out test window)."""
    candidates = np.unique(np.round(scores, 6))
    if len(candidates) > 2000:
        candidates = np.unique(np.quantile(scores, np.linspace(0, 1, 2001)))
    candidates = np.append(candidates, np.nextafter(scores.max(), np.inf))  # "flag nothing" is an option too
    order = np.argsort(-scores)
    sorted_scores = scores[order]
    sorted_labels = labels[order].astype(np.int64)
    true_positives = np.cumsum(sorted_labels)
    total_frauds = int(sorted_labels.sum())
    best_threshold, best_value = 0.5, np.inf
    for threshold in candidates:
        flagged = int(np.searchsorted(-sorted_scores, -threshold, side="right"))  # scores >= threshold
        tp = int(true_positives[flagged - 1]) if flagged else 0
        fp = flagged - tp
        fn = total_frauds - tp
        if rule.kind == "precision":
            precision = tp / flagged if flagged else 0.0
            value = -tp if precision >= rule.target_precision else np.inf
        else:
            value = fn * rule.cost_missed_fraud + fp * rule.cost_false_alert
        if value < best_value:
            best_threshold, best_value = float(threshold), value
    return best_threshold


@dataclass
class Metrics:
    roc_auc: float
    average_precision: float
    precision: float
    recall: float
    f1: float
    threshold: float
    recall_at_fpr_0_1pct: float
    recall_at_fpr_1pct: float
    card_precision_at_k: float
    review_capacity_k: int
    expected_cost: float
    expected_cost_per_1k: float
    alerts: int
    frauds: int
    transactions: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def recall_at_fpr(labels: np.ndarray, scores: np.ndarray, max_fpr: float) -> float:
    fpr, tpr, _ = roc_curve(labels, scores)
    allowed = fpr <= max_fpr
    return float(tpr[allowed].max()) if allowed.any() else 0.0


def card_precision_at_k(
    days: pd.Series, cards: pd.Series, labels: np.ndarray, scores: np.ndarray, k: int
) -> float:
    """Mean over days of the share of frauded cards among the day's k highest-scoring cards.

    A card counts once per day (its highest score, fraudulent if any of its transactions was):
    an analyst reviews cards, not transactions.
    """
    frame = pd.DataFrame({"day": days.to_numpy(), "card": cards.to_numpy(), "label": labels, "score": scores})
    per_card = frame.groupby(["day", "card"], sort=False).agg(score=("score", "max"), label=("label", "max"))
    precisions = []
    for _, day in per_card.groupby(level="day", sort=True):
        top = day.nlargest(k, "score")
        precisions.append(top["label"].sum() / k)
    return float(np.mean(precisions)) if precisions else 0.0


def evaluate(
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    rule: ThresholdRule,
    days: pd.Series,
    cards: pd.Series,
    review_capacity: int = 100,
) -> Metrics:
    labels = labels.astype(np.int64)
    flagged = scores >= threshold
    tp = int((flagged & (labels == 1)).sum())
    fp = int((flagged & (labels == 0)).sum())
    fn = int(((~flagged) & (labels == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    cost = fn * rule.cost_missed_fraud + fp * rule.cost_false_alert
    return Metrics(
        roc_auc=float(roc_auc_score(labels, scores)),
        average_precision=float(average_precision_score(labels, scores)),
        precision=precision,
        recall=recall,
        f1=f1,
        threshold=float(threshold),
        recall_at_fpr_0_1pct=recall_at_fpr(labels, scores, 0.001),
        recall_at_fpr_1pct=recall_at_fpr(labels, scores, 0.01),
        card_precision_at_k=card_precision_at_k(days, cards, labels, scores, review_capacity),
        review_capacity_k=review_capacity,
        expected_cost=float(cost),
        expected_cost_per_1k=float(cost / len(labels) * 1000),
        alerts=int(flagged.sum()),
        frauds=int(labels.sum()),
        transactions=len(labels),
    )


def recall_by_pattern(
    patterns: pd.Series, labels: np.ndarray, scores: np.ndarray, threshold: float
) -> pd.DataFrame:
    """Per fraud pattern: how many frauds, how many caught at the threshold, and the recall."""
    frauds = pd.DataFrame({"pattern": patterns.to_numpy(), "caught": scores >= threshold})[labels == 1]
    table = frauds.groupby("pattern").agg(frauds=("caught", "size"), caught=("caught", "sum"))
    table["recall"] = table["caught"] / table["frauds"]
    return table.sort_values("recall")


def curves(labels: np.ndarray, scores: np.ndarray) -> dict[str, np.ndarray]:
    precision, recall, _ = precision_recall_curve(labels, scores)
    fpr, tpr, _ = roc_curve(labels, scores)
    return {"precision": precision, "recall": recall, "fpr": fpr, "tpr": tpr}
