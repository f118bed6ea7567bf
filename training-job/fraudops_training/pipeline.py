"""The training run, end to end: data → point-in-time features → time windows → Optuna → final model →
threshold → held-out evaluation against baselines → artifact, report and registry entry."""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import xgboost as xgb
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.linear_model import LogisticRegression

from fraudops.artifact import ModelMetadata, save_artifact
from fraudops.errors import RejectedInputError
from fraudops.features.engine import FeatureEngine
from fraudops.features.spec import DAY, FEATURE_NAMES, FEATURE_VERSION, FeatureConfig
from fraudops_training.data import DataReport, load_history
from fraudops_training.evaluation import ThresholdRule, choose_threshold, evaluate, recall_by_pattern
from fraudops_training.report import ReportInputs, write_report
from fraudops_training.tuning import Sample, fit, negative_sample, tune

log = logging.getLogger(__name__)


@dataclass
class TrainingConfig:
    data: Path
    columns: dict[str, str] = field(default_factory=dict)
    output_root: Path = Path("artifacts/models")
    model_name: str = "card-fraud"
    version: str | None = None
    trials: int = 30
    timeout_s: float = 600.0
    seed: int = 7
    train_end: datetime | None = None
    test_start: datetime | None = None
    test_end: datetime | None = None
    label_delay_days: float = 7.0
    validation_days: float | None = None
    negative_sample_rate: float = 0.1
    threshold_rule: ThresholdRule = field(default_factory=ThresholdRule)
    review_capacity: int = 100


@dataclass
class TrainingResult:
    artifact_dir: Path
    metadata: ModelMetadata
    report_path: Path
    metrics: dict[str, dict[str, Any]]
    data: DataReport
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "Succeeded",
            "artifactUri": str(self.artifact_dir.resolve()),
            "model": self.metadata.name,
            "version": self.metadata.version,
            "threshold": self.metadata.threshold,
            "metrics": self.metrics["model"],
            "baselines": {k: v for k, v in self.metrics.items() if k != "model"},
            "report": str(self.report_path.resolve()),
            "seconds": round(self.seconds, 1),
            "trials": self.metadata.training.get("trials"),
        }


@dataclass
class Windows:
    """Row masks for the time-aware split; each later window is separated by the label-delay gap."""

    inner_train: np.ndarray
    validation: np.ndarray
    train: np.ndarray
    test: np.ndarray
    describe: dict[str, str]


def split_windows(times: pd.Series, config: TrainingConfig) -> Windows:
    start, end = times.iloc[0], times.iloc[-1]
    span = end - start
    gap = pd.Timedelta(days=config.label_delay_days)
    test_start = pd.Timestamp(config.test_start) if config.test_start else start + span * 0.8
    test_end = pd.Timestamp(config.test_end) if config.test_end else end + pd.Timedelta(seconds=1)
    # A model that goes live at test_start only knows the labels of transactions before test_start - gap.
    train_end = (
        min(pd.Timestamp(config.train_end), test_start - gap) if config.train_end else test_start - gap
    )
    validation_length = (
        pd.Timedelta(days=config.validation_days) if config.validation_days else ((train_end - start) * 0.2)
    )
    validation_start = train_end - validation_length
    inner_train_end = validation_start - gap
    if inner_train_end <= start or validation_start >= train_end or test_start >= test_end:
        raise RejectedInputError(
            "--test-start",
            f"the data ({start:%Y-%m-%d} to {end:%Y-%m-%d}) is too short for train / "
            f"{config.label_delay_days:g}-day gap / validation / gap / test windows; give more history or "
            "explicit --train-end/--test-start/--test-end",
        )
    masks = Windows(
        inner_train=(times < inner_train_end).to_numpy(),
        validation=((times >= validation_start) & (times < train_end)).to_numpy(),
        train=(times < train_end).to_numpy(),
        test=((times >= test_start) & (times < test_end)).to_numpy(),
        describe={
            "tuning: train": f"{start:%Y-%m-%d} → {inner_train_end:%Y-%m-%d %H:%M}",
            "tuning: validation": f"{validation_start:%Y-%m-%d %H:%M} → {train_end:%Y-%m-%d %H:%M}",
            "final model: train": f"{start:%Y-%m-%d} → {train_end:%Y-%m-%d %H:%M}",
            "held-out test": f"{test_start:%Y-%m-%d %H:%M} → {test_end:%Y-%m-%d %H:%M}",
            "label-delay gap": f"{config.label_delay_days:g} days before validation and before test",
        },
    )
    for name in ("inner_train", "validation", "test"):
        labels_present = getattr(masks, name).sum()
        if labels_present == 0:
            raise RejectedInputError("--test-start", f"the {name.replace('_', ' ')} window is empty")
    return masks


def _amount_baseline(features: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> LogisticRegression:
    model = LogisticRegression(max_iter=500)
    model.fit(np.log1p(features[:, [0]]), labels, sample_weight=weights)  # column 0 is AMOUNT
    return model


def _baseline_scores(kind: str, train: Sample, features_out: np.ndarray, seed: int) -> np.ndarray:
    if kind == "amount-only logistic regression":
        model = _amount_baseline(train.features, train.labels, train.weights)
        return model.predict_proba(np.log1p(features_out[:, [0]]))[:, 1]
    booster = fit(train, list(FEATURE_NAMES), {"max_depth": 6, "eta": 0.3}, rounds=100, seed=seed)
    return booster.predict(xgb.DMatrix(features_out, feature_names=list(FEATURE_NAMES)))


def run_training(config: TrainingConfig, console: Console | None = None) -> TrainingResult:
    console = console or Console(stderr=True)
    started = time.monotonic()
    version = config.version or datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    feature_config = FeatureConfig(label_delay_s=config.label_delay_days * DAY)

    with console.status("loading data…"):
        history, data_report = load_history(config.data, config.columns)
    console.print(
        f"[green]✓[/] data: {data_report.rows:,} transactions, {data_report.frauds:,} frauds "
        f"({data_report.fraud_rate:.2%}), {data_report.start:%Y-%m-%d} → {data_report.end:%Y-%m-%d}"
    )
    for family, why in data_report.skipped_families.items():
        console.print(f"  [yellow]skipped[/] feature family {family}: {why}")

    t0 = time.monotonic()
    with console.status("computing point-in-time features (replaying history)…"):
        features = FeatureEngine(feature_config).replay(history)
    labels = history["is_fraud"].to_numpy(dtype=np.int8)
    console.print(
        f"[green]✓[/] features: {features.shape[1]} per transaction, "
        f"{len(features) / (time.monotonic() - t0):,.0f} transactions/s"
    )

    windows = split_windows(history["event_time"], config)
    inner = negative_sample(
        features[windows.inner_train], labels[windows.inner_train], config.negative_sample_rate, config.seed
    )
    valid_x, valid_y = features[windows.validation], labels[windows.validation]

    with Progress(
        TextColumn("[bold]optuna[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("", total=config.trials)

        def on_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            best = max((t.value for t in study.trials if t.value is not None), default=float("nan"))
            progress.update(task, advance=1, description=f"best validation AP {best:.4f}")

        tuning = tune(
            inner,
            valid_x,
            valid_y,
            list(FEATURE_NAMES),
            trials=config.trials,
            timeout_s=config.timeout_s,
            seed=config.seed,
            on_trial=on_trial,
        )
    console.print(
        f"[green]✓[/] tuning: {len(tuning.study.trials)} trials in {tuning.seconds:.0f} s "
        f"({tuning.interrupted_trials} interrupted by the budget), best validation AP "
        f"{tuning.best_validation_ap:.4f}"
    )

    rule = config.threshold_rule
    threshold = choose_threshold(valid_y, tuning.validation_scores, rule)
    with console.status("training the final model and the baselines…"):
        full = negative_sample(
            features[windows.train], labels[windows.train], config.negative_sample_rate, config.seed
        )
        booster = fit(full, list(FEATURE_NAMES), tuning.best_params, tuning.best_rounds, config.seed)
        test_x, test_y = features[windows.test], labels[windows.test]
        test_scores = {"model": booster.predict(xgb.DMatrix(test_x, feature_names=list(FEATURE_NAMES)))}
        thresholds = {"model": threshold}
        for baseline in ("untuned XGBoost", "amount-only logistic regression"):
            thresholds[baseline] = choose_threshold(
                valid_y, _baseline_scores(baseline, inner, valid_x, config.seed), rule
            )
            test_scores[baseline] = _baseline_scores(baseline, full, test_x, config.seed)

    test_rows = history.loc[windows.test]
    cards = (
        test_rows["card_id"].fillna(test_rows["customer_id"])
        if "card_id" in test_rows
        else test_rows["customer_id"]
    )
    days = test_rows["event_time"].dt.floor("D")
    metrics = {
        name: evaluate(test_y, scores, thresholds[name], rule, days, cards, config.review_capacity).as_dict()
        for name, scores in test_scores.items()
    }
    per_pattern = None
    if "fraud_pattern" in test_rows and test_rows["fraud_pattern"].notna().any():
        per_pattern = recall_by_pattern(
            test_rows["fraud_pattern"].fillna("unlabelled"), test_y, test_scores["model"], threshold
        )
        metrics["model"]["recall_by_pattern"] = per_pattern["recall"].round(4).to_dict()

    artifact_dir = config.output_root / config.model_name / version
    metadata = ModelMetadata(
        name=config.model_name,
        version=version,
        feature_names=list(FEATURE_NAMES),
        feature_version=FEATURE_VERSION,
        threshold=float(threshold),
        threshold_rule=rule.describe(),
        created_at=datetime.now(UTC).isoformat(),
        metrics={k: v for k, v in metrics["model"].items() if not isinstance(v, dict)},
        feature_config=feature_config.as_dict(),
        training={
            "data": data_report.source,
            "data_fingerprint": data_report.fingerprint,
            "rows": data_report.rows,
            "frauds": data_report.frauds,
            "windows": windows.describe,
            "best_params": tuning.best_params,
            "rounds": tuning.best_rounds,
            "trials": len(tuning.study.trials),
            "negative_sample_rate": config.negative_sample_rate,
            "skipped_families": data_report.skipped_families,
        },
        libraries={
            name: package_version(name) for name in ("xgboost", "optuna", "scikit-learn", "numpy", "numba")
        }
        | {"python": platform.python_version()},
    )
    save_artifact(artifact_dir, booster, metadata)
    report_dir = artifact_dir / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    holdout = pd.DataFrame(
        {
            "transaction_id": test_rows["transaction_id"].to_numpy(),
            "event_time": test_rows["event_time"].to_numpy(),
            "customer_id": test_rows["customer_id"].to_numpy(),
            "score": test_scores["model"],
            "label": test_y,
        }
    )
    if "fraud_pattern" in test_rows:
        holdout["fraud_pattern"] = test_rows["fraud_pattern"].to_numpy()
    holdout.to_parquet(report_dir / "holdout_predictions.parquet", index=False)
    tuning.study.trials_dataframe().to_csv(report_dir / "optuna_trials.csv", index=False)
    importance = pd.Series(booster.get_score(importance_type="total_gain"), dtype=float)
    report_path = write_report(
        report_dir,
        ReportInputs(
            title=f"fraudops model {config.model_name} {version}",
            summary={
                "model": f"{config.model_name} {version}",
                "data": data_report.source,
                "transactions": data_report.rows,
                "frauds": data_report.frauds,
                "fraud rate": f"{data_report.fraud_rate:.3%}",
                "data fingerprint": data_report.fingerprint,
                **windows.describe,
                "Optuna trials": len(tuning.study.trials),
                "features": f"{len(FEATURE_NAMES)} (definition version {FEATURE_VERSION})",
            },
            metrics=metrics,
            threshold_rule=rule.describe(),
            labels=test_y,
            scores=test_scores,
            threshold=threshold,
            importance=importance,
            per_pattern=per_pattern,
            study=tuning.study,
            skipped_families=data_report.skipped_families,
        ),
    )
    _point_latest(config.output_root, artifact_dir)
    result = TrainingResult(
        artifact_dir, metadata, report_path, metrics, data_report, time.monotonic() - started
    )
    (artifact_dir / "report" / "result.json").write_text(
        json.dumps(result.as_dict(), indent=2, default=float)
    )
    return result


def _point_latest(root: Path, artifact_dir: Path) -> None:
    """`<root>/latest` → the newest artifact, the local default MODEL_PATH."""
    latest = root / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(artifact_dir.resolve(), target_is_directory=True)
