"""`fraudops train`: Optuna + XGBoost on any labelled transaction history, with an honest evaluation."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fraudops.config import get_settings
from fraudops.errors import FraudopsError

if TYPE_CHECKING:
    from fraudops_training.pipeline import TrainingResult
from rich.console import Console
from rich.table import Table

console = Console(stderr=True, highlight=False)


def train(
    data: Annotated[
        Path,
        typer.Option(
            envvar="FRAUDOPS_TRAIN_DATA",
            help="Labelled history: .csv or .parquet (e.g. from `fraudops simulate`).",
        ),
    ],
    columns: Annotated[
        str | None,
        typer.Option(
            envvar="FRAUDOPS_TRAIN_COLUMNS",
            help="Column mapping ours=theirs, comma-separated, e.g. event_time=ts,customer_id=card,is_fraud=label",
        ),
    ] = None,
    output: Annotated[
        Path,
        typer.Option(
            envvar="FRAUDOPS_TRAIN_OUTPUT",
            help="Artifact root; the model lands in <output>/<name>/<version>.",
        ),
    ] = Path("artifacts/models"),
    name: Annotated[
        str, typer.Option(envvar="FRAUDOPS_TRAIN_NAME", help="Model name (registry key).")
    ] = "card-fraud",
    version: Annotated[
        str | None,
        typer.Option(envvar="FRAUDOPS_TRAIN_VERSION", help="Model version (default: a UTC timestamp)."),
    ] = None,
    trials: Annotated[int, typer.Option(envvar="FRAUDOPS_TRAIN_TRIALS", min=1, help="Optuna trials.")] = 30,
    timeout: Annotated[
        float,
        typer.Option(
            envvar="FRAUDOPS_TRAIN_TIMEOUT", min=1, help="Wall-clock budget for tuning, seconds (interrupts)."
        ),
    ] = 600,
    seed: Annotated[
        int,
        typer.Option(
            envvar="FRAUDOPS_TRAIN_SEED",
        ),
    ] = 7,
    train_end: Annotated[
        datetime | None,
        typer.Option(envvar="FRAUDOPS_TRAIN_TRAIN_END", help="Last event time used for training."),
    ] = None,
    test_start: Annotated[
        datetime | None,
        typer.Option(
            envvar="FRAUDOPS_TRAIN_TEST_START", help="Start of the held-out window (default: last 20%)."
        ),
    ] = None,
    test_end: Annotated[
        datetime | None, typer.Option(envvar="FRAUDOPS_TRAIN_TEST_END", help="End of the held-out window.")
    ] = None,
    label_delay_days: Annotated[
        float,
        typer.Option(
            envvar="FRAUDOPS_TRAIN_LABEL_DELAY_DAYS",
            min=0,
            help="Days until a label is known (gap between windows).",
        ),
    ] = 7,
    negative_sample_rate: Annotated[
        float,
        typer.Option(
            envvar="FRAUDOPS_TRAIN_NEGATIVE_SAMPLE_RATE",
            min=0.001,
            max=1,
            help="Share of legitimate rows kept.",
        ),
    ] = 0.1,
    burn_in_days: Annotated[
        float | None,
        typer.Option(
            envvar="FRAUDOPS_TRAIN_BURN_IN_DAYS",
            min=0,
            help="Days at the start that warm the state up and are not trained on (default: min(30, a quarter of the "
            "history)); as many days after them are replayed again from no state and trained on, as a freshly "
            "started scorer computes them.",
        ),
    ] = None,
    extra_numeric: Annotated[
        str | None,
        typer.Option(
            envvar="FRAUDOPS_TRAIN_EXTRA_NUMERIC",
            help="Comma-separated source columns to use as numeric model inputs (e.g. customer_age); the "
            "scorers then take the same fields in each transaction's `extras` (docs/extra-columns.md).",
        ),
    ] = None,
    extra_categorical: Annotated[
        str | None,
        typer.Option(
            envvar="FRAUDOPS_TRAIN_EXTRA_CATEGORICAL",
            help="Comma-separated source columns to use as categories with learned codes (e.g. mcc,pos_entry_mode): "
            "trimmed and case-folded, rare and unseen ones sharing one learned code. Names: letters, digits, "
            "underscores.",
        ),
    ] = None,
    max_dropped_share: Annotated[
        float,
        typer.Option(
            envvar="FRAUDOPS_TRAIN_MAX_DROPPED_SHARE",
            min=0,
            max=1,
            help="Share of unusable rows (bad time, no id, bad label or amount) dropped and reported before the file is refused.",
        ),
    ] = 0.01,
    threshold_rule: Annotated[
        str,
        typer.Option(
            envvar="FRAUDOPS_TRAIN_THRESHOLD_RULE", help="cost (minimum expected cost) or precision (target)."
        ),
    ] = "cost",
    cost_missed_fraud: Annotated[
        float, typer.Option(envvar="FRAUDOPS_TRAIN_COST_MISSED_FRAUD", min=0)
    ] = 100.0,
    cost_false_alert: Annotated[float, typer.Option(envvar="FRAUDOPS_TRAIN_COST_FALSE_ALERT", min=0)] = 5.0,
    target_precision: Annotated[
        float, typer.Option(envvar="FRAUDOPS_TRAIN_TARGET_PRECISION", min=0, max=1)
    ] = 0.9,
    review_capacity: Annotated[
        int,
        typer.Option(
            envvar="FRAUDOPS_TRAIN_REVIEW_CAPACITY", min=1, help="Cards an analyst team reviews per day (k)."
        ),
    ] = 100,
    entity_features: Annotated[
        bool,
        typer.Option(
            envvar="FRAUDOPS_TRAIN_ENTITY_FEATURES",
            help="Train on the entity-risk features (merchant, terminal, device, IP, beneficiary). Only for "
            "models served where the entity-state component runs (ENTITY_TABLE=true): without it the stream "
            "consumer and the gateway refuse the model.",
        ),
    ] = False,
    register: Annotated[
        bool,
        typer.Option(
            envvar="FRAUDOPS_TRAIN_REGISTER", help="Record the version in the PostgreSQL model registry."
        ),
    ] = False,
    result_file: Annotated[
        Path | None,
        typer.Option(
            envvar="FRAUDOPS_TRAIN_RESULT_FILE",
            help="Write the machine-readable outcome here (the operator copies it into TrainingRun status).",
        ),
    ] = None,
) -> None:
    """Train, evaluate and package a model: artifact, HTML report, JSON metrics, holdout predictions.

    Every option can also come from the environment (FRAUDOPS_TRAIN_<OPTION>), which is how the
    training Job of a TrainingRun is configured.
    """
    try:
        _train(**{k: v for k, v in locals().items() if k != "result_file"}, result_file=result_file)
    except (FraudopsError, ValueError, RuntimeError) as exc:
        write_result(result_file, {"status": "Failed", "message": str(exc)})
        raise FraudopsError(str(exc)) from exc


def write_result(path: Path | None, result: dict[str, object]) -> None:
    """The outcome as JSON in `path`, and in the Kubernetes termination log when running in a pod."""
    text = json.dumps(result, default=float)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    termination_log = Path("/dev/termination-log")
    if termination_log.exists() and os.access(termination_log, os.W_OK):
        termination_log.write_text(text[:4000])  # the kubelet keeps at most 4 KiB


def _train(
    *,
    data: Path,
    columns: str | None,
    output: Path,
    name: str,
    version: str | None,
    trials: int,
    timeout: float,
    seed: int,
    train_end: datetime | None,
    test_start: datetime | None,
    test_end: datetime | None,
    label_delay_days: float,
    negative_sample_rate: float,
    burn_in_days: float | None,
    extra_numeric: str | None,
    extra_categorical: str | None,
    max_dropped_share: float,
    threshold_rule: str,
    cost_missed_fraud: float,
    cost_false_alert: float,
    target_precision: float,
    review_capacity: int,
    entity_features: bool,
    register: bool,
    result_file: Path | None,
) -> None:
    # Training libraries load in seconds: imported here so that other commands start fast.
    from fraudops_training.data import parse_column_mapping
    from fraudops_training.evaluation import ThresholdRule
    from fraudops_training.pipeline import TrainingConfig, run_training

    if threshold_rule not in ("cost", "precision"):
        raise typer.BadParameter("use cost or precision", param_hint="--threshold-rule")
    config = TrainingConfig(
        data=data,
        columns=parse_column_mapping(columns),
        output_root=output,
        model_name=name,
        version=version,
        trials=trials,
        timeout_s=timeout,
        seed=seed,
        train_end=_utc(train_end),
        test_start=_utc(test_start),
        test_end=_utc(test_end),
        label_delay_days=label_delay_days,
        negative_sample_rate=negative_sample_rate,
        burn_in_days=burn_in_days,
        max_dropped_share=max_dropped_share,
        extra_numeric=_names(extra_numeric),
        extra_categorical=_names(extra_categorical),
        threshold_rule=ThresholdRule(threshold_rule, cost_missed_fraud, cost_false_alert, target_precision),
        review_capacity=review_capacity,
        entity_features=entity_features,
    )
    result = run_training(config, console)
    if register:
        from fraudops import registry

        registry.register(get_settings().db_url, result.metadata, str(result.artifact_dir.resolve()))
        console.print(f"[green]✓[/] registered {result.metadata.name}:{result.metadata.version} as candidate")
    write_result(result_file, result.as_dict())
    print_summary(result)


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else (value.replace(tzinfo=UTC) if value.tzinfo is None else value)


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in (text or "").split(",") if name.strip())


def print_summary(result: TrainingResult) -> None:
    table = Table(title="held-out window", box=None)
    table.add_column("")
    for column in ("AP", "ROC-AUC", "precision", "recall", "recall@1%FPR", "card P@k", "cost"):
        table.add_column(column, justify="right")
    for name, m in result.metrics.items():
        table.add_row(
            name,
            f"{m['average_precision']:.3f}",
            f"{m['roc_auc']:.3f}",
            f"{m['precision']:.3f}",
            f"{m['recall']:.3f}",
            f"{m['recall_at_fpr_1pct']:.3f}",
            f"{m['card_precision_at_k']:.3f}",
            f"{m['expected_cost']:,.0f}",
        )
    console.print(table)
    console.print(f"threshold {result.metadata.threshold:.4f} — {result.metadata.threshold_rule}")
    console.print(f"artifact  {result.artifact_dir}")
    console.print(f"report    {result.report_path}")
    console.print(f"took      {result.seconds:.0f} s")
