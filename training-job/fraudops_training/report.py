"""The evaluation report: one self-contained HTML file (plots inlined as PNG) plus the same numbers as JSON."""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: the training Job has no display
import matplotlib.pyplot as plt
import numpy as np
import optuna
import pandas as pd

from fraudops_training.evaluation import curves

COLOURS = {
    "model": "#1f5fa8",
    "untuned XGBoost": "#e39b2d",
    "textbook XGBoost": "#2e8b57",
    "amount-only logistic regression": "#9a9a9a",
}


@dataclass
class ReportInputs:
    title: str
    summary: dict[str, Any]  # model, data and window facts shown at the top
    metrics: dict[str, dict[str, Any]]  # row name -> Metrics.as_dict()
    threshold_rule: str
    labels: np.ndarray
    scores: dict[str, np.ndarray]  # row name -> held-out scores
    threshold: float
    importance: pd.Series
    per_pattern: pd.DataFrame | None
    study: optuna.Study
    skipped_families: dict[str, str]
    generalization: dict[str, pd.DataFrame] = field(default_factory=dict)  # title -> table
    dropped: list[str] = field(default_factory=list)  # rows left out of the data, by reason


def _png(figure: plt.Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _pr_roc(inputs: ReportInputs) -> str:
    figure, (pr, roc) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, scores in inputs.scores.items():
        c = curves(inputs.labels, scores)
        ap = inputs.metrics[name]["average_precision"]
        auc = inputs.metrics[name]["roc_auc"]
        pr.plot(c["recall"], c["precision"], label=f"{name} (AP {ap:.3f})", color=COLOURS.get(name))
        roc.plot(c["fpr"], c["tpr"], label=f"{name} (AUC {auc:.3f})", color=COLOURS.get(name))
    pr.set(xlabel="recall", ylabel="precision", title="Precision–recall (held-out window)", ylim=(0, 1.02))
    roc.set(
        xlabel="false-positive rate",
        ylabel="true-positive rate",
        title="ROC (log FPR)",
        xscale="log",
        xlim=(1e-5, 1),
    )
    for axis in (pr, roc):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="lower left" if axis is pr else "lower right")
    return _png(figure)


def _score_distribution(inputs: ReportInputs) -> str:
    figure, axis = plt.subplots(figsize=(7, 3.8))
    scores = inputs.scores["model"]
    bins = np.linspace(0, 1, 51)
    axis.hist(scores[inputs.labels == 0], bins=bins, alpha=0.6, label="legitimate", color="#4c9f70", log=True)
    axis.hist(scores[inputs.labels == 1], bins=bins, alpha=0.7, label="fraud", color="#c0392b", log=True)
    axis.axvline(inputs.threshold, color="black", linestyle="--", label=f"threshold {inputs.threshold:.3f}")
    axis.set(
        xlabel="fraud probability", ylabel="transactions (log)", title="Score distribution (held-out window)"
    )
    axis.legend(fontsize=8)
    return _png(figure)


def _importance(inputs: ReportInputs) -> str:
    top = inputs.importance.sort_values(ascending=True).tail(25)
    figure, axis = plt.subplots(figsize=(7, 6.5))
    axis.barh(top.index, top.to_numpy(), color=COLOURS["model"])
    axis.set(xlabel="total gain", title="Feature importance (top 25 by gain)")
    return _png(figure)


def _per_pattern(inputs: ReportInputs) -> str | None:
    if inputs.per_pattern is None or inputs.per_pattern.empty:
        return None
    table = inputs.per_pattern
    figure, axis = plt.subplots(figsize=(7, 0.32 * len(table) + 1.2))
    axis.barh(table.index, table["recall"], color="#8e44ad")
    for position, (recall, frauds) in enumerate(zip(table["recall"], table["frauds"], strict=True)):
        axis.text(1.02, position, f"{recall:.0%} of {frauds}", va="center", fontsize=8)
    axis.set(
        xlim=(0, 1), xlabel="recall at the threshold", title="Recall per fraud pattern (held-out window)"
    )
    axis.spines[["right", "top"]].set_visible(False)
    return _png(figure)


def _optuna_history(inputs: ReportInputs) -> str:
    trials = inputs.study.trials_dataframe()
    figure, axis = plt.subplots(figsize=(7, 3.8))
    complete = trials[trials["state"] == "COMPLETE"]
    pruned = trials[trials["state"] == "PRUNED"]
    axis.scatter(complete["number"], complete["value"], s=18, label="completed trial", color=COLOURS["model"])
    if len(pruned):
        axis.scatter(
            pruned["number"],
            np.full(len(pruned), complete["value"].min()),
            marker="x",
            s=18,
            color="#999",
            label="pruned / interrupted",
        )
    axis.plot(complete["number"], complete["value"].cummax(), color="black", label="best so far")
    axis.set(xlabel="trial", ylabel="validation average precision", title="Optuna search history")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return _png(figure)


def _table(rows: dict[str, dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in columns)
    body = []
    for name, values in rows.items():
        cells = "".join(f"<td>{_fmt(values.get(key))}</td>" for key, _ in columns)
        body.append(f"<tr><th>{html.escape(name)}</th>{cells}</tr>")
    return f"<table><tr><th></th>{head}</tr>{''.join(body)}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 100 else f"{value:,.0f}"
    return html.escape(str(value)) if value is not None else "–"


METRIC_COLUMNS = [
    ("average_precision", "AP (PR-AUC)"),
    ("roc_auc", "ROC-AUC"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("f1", "F1"),
    ("recall_at_fpr_0_1pct", "recall @ 0.1% FPR"),
    ("recall_at_fpr_1pct", "recall @ 1% FPR"),
    ("card_precision_at_k", "card precision@k/day"),
    ("expected_cost", "expected cost"),
    ("alerts", "alerts"),
    ("threshold", "threshold"),
]


def write_report(folder: Path, inputs: ReportInputs) -> Path:
    """Write report.html and metrics.json into `folder`; returns the HTML path."""
    folder.mkdir(parents=True, exist_ok=True)
    images = {
        "Precision–recall and ROC": _pr_roc(inputs),
        "Score distribution": _score_distribution(inputs),
        "Feature importance": _importance(inputs),
        "Optuna history": _optuna_history(inputs),
    }
    pattern_png = _per_pattern(inputs)
    if pattern_png:
        images["Recall per fraud pattern"] = pattern_png
    summary_rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in inputs.summary.items()
    )
    skipped = "".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in inputs.skipped_families.items()
    )
    figures = "".join(
        f'<h2>{html.escape(t)}</h2><img alt="{html.escape(t)}" src="data:image/png;base64,{png}">'
        for t, png in images.items()
    )
    generalization = "".join(
        f"<h2>Generalization: {html.escape(title)}</h2>" + table.to_html(float_format=lambda x: f"{x:.3f}")
        for title, table in inputs.generalization.items()
    )
    dropped = "".join(f"<li>{html.escape(line)}</li>" for line in inputs.dropped) or "<li>none</li>"
    pattern_table = ""
    if inputs.per_pattern is not None and not inputs.per_pattern.empty:
        pattern_table = "<h2>Per-pattern recall</h2>" + inputs.per_pattern.to_html(
            float_format=lambda x: f"{x:.3f}"
        )
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(inputs.title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ddd;padding:4px 8px;text-align:right}}
th{{background:#f5f5f5;text-align:left}}img{{max-width:100%;border:1px solid #eee;margin:.5em 0}}
.rule{{background:#eef5ff;padding:.6em 1em;border-left:4px solid #1f5fa8}}</style></head><body>
<h1>{html.escape(inputs.title)}</h1>
<table>{summary_rows}</table>
<p class="rule"><b>Decision threshold rule:</b> {html.escape(inputs.threshold_rule)}. Chosen threshold:
<b>{inputs.threshold:.4f}</b> (picked on the validation window; the held-out window below was never seen by tuning).</p>
<h2>Held-out window: the model against its baselines</h2>
{_table(inputs.metrics, METRIC_COLUMNS)}
<h2>Rows left out of the data</h2><ul>{dropped}</ul>
{generalization}
<h2>Feature families skipped for lack of input columns</h2><ul>{skipped or "<li>none: every family had its inputs</li>"}</ul>
{pattern_table}{figures}</body></html>"""
    path = folder / "report.html"
    path.write_text(page)
    document = {
        "summary": {k: (str(v) if not isinstance(v, int | float) else v) for k, v in inputs.summary.items()},
        "threshold_rule": inputs.threshold_rule,
        "threshold": inputs.threshold,
        "metrics": inputs.metrics,
        "per_pattern": None
        if inputs.per_pattern is None
        else inputs.per_pattern.reset_index().to_dict("records"),
        "skipped_families": inputs.skipped_families,
        "dropped": inputs.dropped,
        "generalization": {
            title: json.loads(table.reset_index().to_json(orient="records"))
            for title, table in inputs.generalization.items()
        },
    }
    (folder / "metrics.json").write_text(json.dumps(document, indent=2, default=float))
    return path
