"""`fraudops simulate`: labelled transactions to a Parquet/CSV file, or streamed to Kafka."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fraudops.config import get_settings
from fraudops_cli.errors import fail
from fraudops_simulator.names import PATTERN_NAMES

if TYPE_CHECKING:
    import pyarrow as pa

    from fraudops_simulator import SimulationConfig

console = Console(stderr=True, highlight=False)

_LABEL_FIELDS = ("transaction_id", "is_fraud", "fraud_pattern", "label_available_at")
#: Without --transactions, a --duration run plans this many per second at full speed (--rate 0).
_UNLIMITED_RATE_PLAN = 60_000  # about what one process sustains against a local broker


def simulate(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this .parquet or .csv file.")
    ] = None,
    kafka: Annotated[
        bool, typer.Option("--kafka", help="Stream to the Kafka transactions topic instead of a file.")
    ] = False,
    transactions: Annotated[
        int | None,
        typer.Option(
            "--transactions",
            "-n",
            min=1,
            help="Transactions to generate (default 100,000; with --kafka --duration: rate x duration).",
        ),
    ] = None,
    customers: Annotated[
        int | None, typer.Option(min=1, help="Customers (default: transactions / 100).")
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Simulated span in days.")] = 90,
    start: Annotated[
        datetime, typer.Option(formats=["%Y-%m-%d"], help="First simulated day (UTC).")
    ] = datetime(2026, 8, 1),
    seed: Annotated[
        int, typer.Option(min=0, help="Random seed: same seed and options, same output bytes.")
    ] = 42,
    fraud_rate: Annotated[float, typer.Option(help="Share of transactions that are fraud, 0–0.2.")] = 0.008,
    label_delay_days: Annotated[
        float, typer.Option(help="Mean days until a label is known (chargeback delay), 1–60.")
    ] = 7.0,
    patterns: Annotated[
        str | None,
        typer.Option(help=f"Only these fraud patterns, comma-separated: {', '.join(PATTERN_NAMES)}."),
    ] = None,
    difficulty: Annotated[
        str,
        typer.Option(
            help="easy (every fraud labelled, on time, unlike its victim) | realistic | hard: "
            "imitation, label noise, late labels, drift."
        ),
    ] = "realistic",
    rate: Annotated[
        float, typer.Option(min=0, help="--kafka: messages per second (0 = as fast as possible).")
    ] = 0.0,
    duration: Annotated[
        float | None, typer.Option(min=0.1, help="--kafka: stop after this many seconds.")
    ] = None,
    labels_output: Annotated[
        Path | None,
        typer.Option(
            help="--kafka: also write the ground truth (transaction_id, is_fraud, fraud_pattern, label_available_at) to this .parquet."
        ),
    ] = None,
) -> None:
    """Simulate realistic bank transactions with labelled fraud patterns mixed into legit behaviour."""
    if kafka == (output is not None):
        raise typer.BadParameter(
            "give either --output FILE (.parquet or .csv) or --kafka", param_hint="--output/--kafka"
        )
    if not kafka and (duration is not None or rate or labels_output is not None):
        raise typer.BadParameter(
            "--rate, --duration and --labels-output only apply with --kafka", param_hint="--kafka"
        )
    _check_suffix(output, "--output")
    _check_suffix(labels_output, "--labels-output", parquet_only=True)
    if transactions is None:
        transactions = 100_000 if duration is None else int(max(1.0, rate or _UNLIMITED_RATE_PLAN) * duration)
    config = _config(
        transactions, customers, days, start.date(), seed, fraud_rate, label_delay_days, patterns, difficulty
    )
    if kafka:
        _to_kafka(config, rate, duration, labels_output)
    else:
        assert output is not None
        _to_file(config, output)


def _check_suffix(path: Path | None, option: str, parquet_only: bool = False) -> None:
    if path is None:
        return
    from fraudops_simulator.files import file_format

    try:
        kind = file_format(path)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from exc
    if parquet_only and kind != "parquet":
        raise typer.BadParameter(
            f"cannot write {path.name!r}: {option} must end in .parquet", param_hint=option
        )


def _config(
    transactions: int,
    customers: int | None,
    days: int,
    start: date,
    seed: int,
    fraud_rate: float,
    label_delay_days: float,
    patterns: str | None,
    difficulty: str = "realistic",
) -> SimulationConfig:
    # the schema rejects event times more than a day ahead, so a simulated span must be over by then
    latest_start = (datetime.now(UTC) + timedelta(days=1)).date() - timedelta(days=days)
    if start > latest_start:
        raise typer.BadParameter(
            f"the simulated span would end in the future; use a --start on or before {latest_start}",
            param_hint="--start",
        )
    from fraudops_simulator.params import SimulationConfig, SimulationParameterError

    chosen = None if patterns is None else tuple(name.strip() for name in patterns.split(",") if name.strip())
    try:
        return SimulationConfig(
            transactions=transactions,
            customers=customers,
            days=days,
            start=start,
            seed=seed,
            fraud_rate=fraud_rate,
            label_delay_days=label_delay_days,
            difficulty=difficulty,
            patterns=chosen,
        )
    except SimulationParameterError as exc:
        raise typer.BadParameter(str(exc), param_hint=exc.option) from exc


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[speed]:>9,.0f}/s"),
        TimeElapsedColumn(),
        console=console,
    )


def _to_file(config: SimulationConfig, output: Path) -> None:
    from fraudops_simulator import plan_run, write_tables
    from fraudops_simulator import simulate as simulate_tables

    started = time.perf_counter()
    with console.status("planning customers, merchants and fraud episodes…"):
        plan = plan_run(config)
    tally = _Tally()
    with _progress() as progress:
        task = progress.add_task(f"writing {output.name}", total=plan.total_rows, speed=0.0)

        def written(table: pa.Table) -> None:
            tally.add(table)
            progress.update(task, advance=table.num_rows, speed=tally.rows / (time.perf_counter() - started))

        write_tables(simulate_tables(config, plan), output, on_written=written)
    tally.report(f"simulated → {output}", time.perf_counter() - started, unit="transactions")


def _to_kafka(
    config: SimulationConfig, rate: float, duration: float | None, labels_output: Path | None
) -> None:
    from fraudops.kafka import client_config
    from fraudops_simulator import plan_run
    from fraudops_simulator import simulate as simulate_tables
    from fraudops_simulator.kafka import check_broker, publish

    settings = get_settings()
    producer_config = client_config(settings)
    partitions = check_broker(producer_config, settings.transactions_topic, timeout_s=3.0)
    with console.status("planning customers, merchants and fraud episodes…"):
        plan = plan_run(config)
    tally = _Tally()
    labels = _LabelWriter(labels_output) if labels_output is not None else None
    with _progress() as progress:
        total = plan.total_rows
        task = progress.add_task(
            f"producing to {settings.transactions_topic} ({partitions} partitions)", total=total, speed=0.0
        )
        produce_started = time.perf_counter()

        def produced(messages: int) -> None:
            progress.update(
                task, completed=messages, speed=messages / max(time.perf_counter() - produce_started, 1e-9)
            )

        def published(table: pa.Table) -> None:
            tally.add(table)
            if labels is not None:
                labels.write(table)

        try:
            report = publish(
                simulate_tables(config, plan),
                config=producer_config,
                topic=settings.transactions_topic,
                rate=rate,
                max_seconds=duration,
                on_progress=produced,
                on_published=published,
            )
        finally:
            if labels is not None:
                labels.close()
    tally.report(
        f"produced → {settings.transactions_topic} at {settings.kafka_bootstrap_servers}",
        report.seconds,
        unit="messages",
        rate_seconds=report.seconds,
    )
    if labels_output is not None:
        console.print(f"ground truth → {labels_output}")
    if report.failed or report.unflushed:
        raise fail(
            f"{report.failed} messages failed and {report.unflushed} were not flushed (first error: "
            f"{report.first_error}); check the broker with `fraudops infra status`"
        )


class _Tally:
    """Counts for the final summary, kept chunk by chunk."""

    def __init__(self) -> None:
        self.rows = 0
        self.frauds = 0
        self.patterns: Counter[str] = Counter()

    def add(self, table: pa.Table) -> None:
        import pyarrow.compute as pc

        self.rows += table.num_rows
        self.frauds += int(pc.sum(table.column("is_fraud")).as_py() or 0)
        for entry in pc.value_counts(table.column("fraud_pattern").drop_null()).to_pylist():
            self.patterns[entry["values"]] += entry["counts"]

    def report(self, title: str, seconds: float, *, unit: str, rate_seconds: float | None = None) -> None:
        summary = Table(title=title, show_header=False, title_justify="left")
        summary.add_column(style="bold")
        summary.add_column(justify="right")
        summary.add_row(unit, f"{self.rows:,}")
        share = self.frauds / self.rows if self.rows else 0.0
        summary.add_row("frauds", f"{self.frauds:,} ({share:.2%})")
        for name, count in sorted(self.patterns.items(), key=lambda item: -item[1]):
            summary.add_row(f"  {name}", f"{count:,}")
        summary.add_row("seconds", f"{seconds:.2f}")
        summary.add_row(f"{unit}/s", f"{self.rows / max(rate_seconds or seconds, 1e-9):,.0f}")
        console.print(summary)


class _LabelWriter:
    """The ground truth of what was produced, streamed to Parquet."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.writer: Any = None  # pyarrow.parquet.ParquetWriter, imported when first needed

    def write(self, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        labels = table.select(list(_LABEL_FIELDS))
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, labels.schema)
        self.writer.write_table(labels)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
