"""The training run, end to end: data → time windows → point-in-time features → Optuna → final model →
threshold → held-out evaluation against baselines and across time → artifact, report and registry entry."""

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

from fraudops.artifact import ModelMetadata, save_artifact
from fraudops.drift import build_reference, write_reference
from fraudops.errors import RejectedInputError
from fraudops.extras import ExtraInputs
from fraudops.features.engine import FeatureEngine
from fraudops.features.spec import DAY, FEATURE_NAMES, FEATURE_VERSION, Feature, FeatureConfig
from fraudops.schema import TRANSACTION_FIELDS
from fraudops_training.baselines import (
    AMOUNT_ONLY,
    TEXTBOOK,
    UNTUNED,
    amount_only_scores,
    textbook_scores,
    untuned_scores,
)
from fraudops_training.coldstart import fresh_engine_features
from fraudops_training.data import MAX_DROPPED_SHARE, DataReport, load_history
from fraudops_training.evaluation import ThresholdRule, choose_threshold, evaluate, recall_by_pattern
from fraudops_training.generalization import by_month, by_tenure, calendar_proxies, tenure_days
from fraudops_training.report import ReportInputs, write_report
from fraudops_training.textbook import textbook_features
from fraudops_training.tuning import Sample, fit, tune
from fraudops_training.windows import KeptRows, WindowBounds, sampled, split_windows

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
    burn_in_days: float | None = None  # default: min(30 days, a quarter of the history)
    max_dropped_share: float = MAX_DROPPED_SHARE
    negative_sample_rate: float = 0.1
    extra_numeric: tuple[str, ...] = ()  # source columns used as model inputs as they are
    extra_categorical: tuple[str, ...] = ()  # source columns used as learned category codes
    threshold_rule: ThresholdRule = field(default_factory=ThresholdRule)
    review_capacity: int = 100
    #: Train on the entity-risk features. Off by default: the stream consumer, the gateway and the
    #: predictor hold no entity table unless the entity-state component runs (docs/entity-features.md),
    #: and see those thirty features as unknown (NaN). A model trained with them and served without
    #: them sends every transaction down the trees' missing-value branches: the seed model flagged
    #: 1,736 of 2,000 transactions of a 1.9%-fraud stream in the e2e cluster. Off, training replays
    #: the features exactly as those scorers compute them (entity features unknown), so online = offline.
    entity_features: bool = False


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


def _sample(features: np.ndarray, labels: np.ndarray, rate: float) -> Sample:
    """Rows already drawn by `windows.sampled`: legitimate ones weigh 1/rate, frauds 1."""
    return Sample(features, labels, np.where(labels == 1, 1.0, 1.0 / rate).astype(np.float32))


def run_training(config: TrainingConfig, console: Console | None = None) -> TrainingResult:
    console = console or Console(stderr=True)
    started = time.monotonic()
    version = config.version or datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    try:
        feature_config = FeatureConfig(label_delay_s=config.label_delay_days * DAY)
    except ValueError as exc:
        raise RejectedInputError("--label-delay-days", str(exc)) from exc

    with console.status("loading data…"):
        history, data_report = load_history(config.data, config.columns, config.max_dropped_share)
    console.print(
        f"[green]✓[/] data: {data_report.rows:,} transactions, {data_report.frauds:,} frauds "
        f"({data_report.fraud_rate:.2%}), {data_report.start:%Y-%m-%d} → {data_report.end:%Y-%m-%d}"
    )
    for dropped in data_report.dropped:
        console.print(f"  [yellow]dropped[/] {dropped.describe()}")
    for family, why in data_report.skipped_families.items():
        console.print(f"  [yellow]skipped[/] feature family {family}: {why}")

    labels = history["is_fraud"].to_numpy(dtype=np.int8)
    windows = split_windows(
        history["event_time"],
        WindowBounds(
            config.label_delay_days,
            config.burn_in_days,
            config.validation_days,
            config.train_end,
            config.test_start,
            config.test_end,
        ),
    )
    draws = np.random.default_rng(config.seed)
    uniform = draws.random(len(history))
    rate = config.negative_sample_rate
    inner_rows = sampled(windows.inner_train, labels, uniform, rate)
    train_rows = sampled(windows.train, labels, uniform, rate)
    # the fresh start's legitimate rows: other transactions of the same days than the warm sample's
    fresh_rows = sampled(windows.fresh_start, labels, draws.random(len(history)), rate)
    fresh_inner, fresh_train = fresh_rows & windows.inner_train, fresh_rows & windows.train
    kept = inner_rows | train_rows | windows.validation | windows.test

    extras = _extra_inputs(history, config, windows.train)

    def with_extras(features: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if not extras:
            return features
        return np.hstack([features, extras.encode_frame(history.loc[mask])])

    t0 = time.monotonic()
    with console.status("computing point-in-time features (replaying history)…"):
        engine = FeatureEngine(feature_config, entity_table=config.entity_features)
        rows = KeptRows(with_extras(engine.replay(history, keep=kept), kept), kept)
        fresh = KeptRows(
            with_extras(
                fresh_engine_features(
                    history,
                    windows.fresh_start,
                    windows.fresh_start_at,
                    fresh_rows,
                    feature_config,
                    config.entity_features,
                ),
                fresh_rows,
            ),
            fresh_rows,
        )
        textbook = KeptRows(textbook_features(history, config.label_delay_days, keep=kept), kept)
    console.print(
        f"[green]✓[/] features: {rows.features.shape[1]} per transaction, "
        f"{(len(history) + int(windows.fresh_start.sum())) / (time.monotonic() - t0):,.0f} transactions/s "
        f"replayed, {int(kept.sum()):,} rows kept for training and evaluation, "
        f"{int(fresh_rows.sum()):,} more from a fresh engine's start"
    )

    def ours(warm: np.ndarray, cold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Training rows of our features: sampled rows of the warm replay and of the fresh start."""
        return np.concatenate([rows[warm], fresh[cold]]), np.concatenate([labels[warm], labels[cold]])

    names = [*FEATURE_NAMES, *extras.names]
    inner = _sample(*ours(inner_rows, fresh_inner), rate)
    valid_x, valid_y = rows[windows.validation], labels[windows.validation]
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
            names,
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
        full = _sample(*ours(train_rows, fresh_train), rate)
        booster = fit(full, names, tuning.best_params, tuning.best_rounds, config.seed)
        test_x, test_y = rows[windows.test], labels[windows.test]
        test_scores = {"model": booster.inplace_predict(test_x)}
        thresholds = {"model": threshold}
        baselines = {
            TEXTBOOK: lambda train, scored: textbook_scores(train, scored, config.seed),
            UNTUNED: lambda train, scored: untuned_scores(train, names, scored, config.seed),
            AMOUNT_ONLY: amount_only_scores,
        }
        inputs = {
            TEXTBOOK: lambda mask: textbook[mask],
            UNTUNED: lambda mask: rows[mask],
            AMOUNT_ONLY: lambda mask: rows[mask][:, [Feature.AMOUNT]],
        }
        for name, scores_of in baselines.items():
            if name == UNTUNED:  # the very samples the model was tuned and trained on
                tuning_sample, final_sample = inner, full
            else:
                tuning_sample = _sample(inputs[name](inner_rows), labels[inner_rows], rate)
                final_sample = _sample(inputs[name](train_rows), labels[train_rows], rate)
            validation_scores = scores_of(tuning_sample, inputs[name](windows.validation))
            thresholds[name] = choose_threshold(valid_y, validation_scores, rule)
            test_scores[name] = scores_of(final_sample, inputs[name](windows.test))

    test_rows = history.loc[windows.test]
    customers = test_rows["customer_id"].astype(object)
    cards = test_rows["card_id"].astype(object).fillna(customers) if "card_id" in test_rows else customers
    days = test_rows["event_time"].dt.floor("D")
    metrics = {
        name: evaluate(test_y, scores, thresholds[name], rule, days, cards, config.review_capacity).as_dict()
        for name, scores in test_scores.items()
    }
    per_pattern = None
    if "fraud_pattern" in test_rows and test_rows["fraud_pattern"].notna().any():
        per_pattern = recall_by_pattern(
            test_rows["fraud_pattern"].astype(object).fillna("unlabelled"),
            test_y,
            test_scores["model"],
            threshold,
        )
        metrics["model"]["recall_by_pattern"] = per_pattern["recall"].round(4).to_dict()

    importance = pd.Series(booster.get_score(importance_type="total_gain"), dtype=float)
    generalization = {
        "by month of the held-out window": by_month(test_rows["event_time"], test_y, test_scores["model"]),
        # a held-out window of a few weeks spans one or two months: weeks show the decay too
        "by week of the held-out window": by_month(
            test_rows["event_time"], test_y, test_scores["model"], "%G-W%V"
        ),
        "by customer tenure": by_tenure(tenure_days(history)[windows.test], test_y, test_scores["model"]),
        # the warm training rows: the fresh start's share the days of the warm ones they sit beside, their
        # young first-seen ages are the cold state itself, not the calendar (coldstart.py)
        "calendar proxies": calendar_proxies(names, rows[train_rows], test_x, importance, seed=config.seed),
    }
    proxies = generalization["calendar proxies"]
    flagged = proxies.loc[proxies["flagged"], "feature"].tolist()
    if flagged:
        console.print(
            f"  [yellow]calendar proxies[/]: {', '.join(flagged)} tell the training period from the test "
            "period by their values alone; expect drift"
        )

    artifact_dir = config.output_root / config.model_name / version
    metadata = ModelMetadata(
        name=config.model_name,
        version=version,
        feature_names=names,
        feature_version=FEATURE_VERSION,
        threshold=float(threshold),
        threshold_rule=rule.describe(),
        created_at=datetime.now(UTC).isoformat(),
        metrics={k: v for k, v in metrics["model"].items() if not isinstance(v, dict)},
        feature_config=feature_config.as_dict(),
        extra_inputs=extras.as_dict() if extras else {},
        training={
            "data": data_report.source,
            "data_fingerprint": data_report.fingerprint,
            "rows": data_report.rows,
            "rows_read": data_report.rows_read,
            "rows_dropped": {d.reason: d.count for d in data_report.dropped},
            "frauds": data_report.frauds,
            "windows": windows.describe,
            "burn_in_days": windows.burn_in_days,
            "best_params": tuning.best_params,
            "rounds": tuning.best_rounds,
            "trials": len(tuning.study.trials),
            "negative_sample_rate": config.negative_sample_rate,
            "entity_features": config.entity_features,
            "skipped_families": data_report.skipped_families,
            "calendar_proxies": flagged,
        },
        # xgboost by its module: the installed distribution is `xgboost-cpu` (same library, no CUDA).
        libraries={name: package_version(name) for name in ("optuna", "scikit-learn", "numpy", "numba")}
        | {"xgboost": xgb.__version__, "python": platform.python_version()},
    )
    save_artifact(artifact_dir, booster, metadata)
    # What serving compares live features with (feature drift): the training window's distribution, from
    # its uniform draw (every row with uniform < rate is kept; the kept frauds beyond those would bias it).
    write_reference(build_reference(rows[windows.train & (uniform < rate)], names), artifact_dir)
    report_dir = artifact_dir / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    holdout = pd.DataFrame(
        {
            "transaction_id": test_rows["transaction_id"].to_numpy(),
            "event_time": test_rows["event_time"].to_numpy(),
            "customer_id": customers.to_numpy(),
            "score": test_scores["model"],
            "label": test_y,
        }
    )
    if "fraud_pattern" in test_rows:
        holdout["fraud_pattern"] = test_rows["fraud_pattern"].astype(object).to_numpy()
    holdout.to_parquet(report_dir / "holdout_predictions.parquet", index=False)
    tuning.study.trials_dataframe().to_csv(report_dir / "optuna_trials.csv", index=False)
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
                "features": f"{len(names)} (definition version {FEATURE_VERSION})",
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
            generalization=generalization,
            dropped=[d.describe() for d in data_report.dropped],
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


def _extra_inputs(history: pd.DataFrame, config: TrainingConfig, train: np.ndarray) -> ExtraInputs:
    """The extra columns, checked against the data, with category codes learned on the training rows only."""
    named = [*config.extra_numeric, *config.extra_categorical]
    missing = [name for name in named if name not in history.columns]
    if missing:
        raise RejectedInputError(
            "--extra-numeric/--extra-categorical",
            f"column(s) {', '.join(missing)} not in the data (it has: "
            f"{', '.join(map(str, history.columns[:25]))})",
        )
    builtin = [name for name in named if name in TRANSACTION_FIELDS]
    if builtin:
        raise RejectedInputError(
            "--extra-numeric/--extra-categorical",
            f"{', '.join(builtin)} already feed the built-in features; extra inputs are for "
            "columns the platform does not know",
        )
    try:
        return ExtraInputs.learn(history.loc[train], config.extra_numeric, config.extra_categorical)
    except ValueError as exc:
        raise RejectedInputError("--extra-numeric/--extra-categorical", str(exc)) from exc


def _point_latest(root: Path, artifact_dir: Path) -> None:
    """`<root>/latest` → the newest artifact, the local default MODEL_PATH."""
    latest = root / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(artifact_dir.resolve(), target_is_directory=True)
