"""`fraudops bench …`: measure, write loadtest/results/<name>.json and BENCH.md, print the table."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fraudops.config import Settings, get_settings

app = typer.Typer(
    help="Benchmarks: numbers as JSON and a markdown table (loadtest/results/).", no_args_is_help=True
)
console = Console(highlight=False)

# Options several benchmarks share (Typer names each flag after the parameter that uses it).
DrainTransactions = Annotated[int, typer.Option(min=1000, help="Pre-loaded transactions for each drain.")]
StreamRate = Annotated[int, typer.Option(min=100, help="Offered stream load, transactions/s.")]
GatewayRate = Annotated[int, typer.Option(min=10, help="Constant request rate for the gateway run.")]
RunSeconds = Annotated[int, typer.Option(min=5, help="Duration of each latency run, seconds.")]
Trials = Annotated[int, typer.Option(min=1, help="Optuna trials per training.")]
TuningBudgetS = Annotated[int, typer.Option(min=10, help="Tuning budget per training, seconds.")]


def _show(measurement) -> None:  # type: ignore[no-untyped-def]
    from fraudops_bench.results import save

    path = save(measurement)
    table = Table(title=f"{measurement.name} — {measurement.description}", box=None, title_justify="left")
    for column in ("number", "value", "target"):
        table.add_column(column)
    verdicts = measurement.passed()
    for key, value in measurement.numbers.items():
        mark = {True: "[green]✓[/]", False: "[red]✗[/]"}.get(verdicts.get(key), "")
        shown = f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        table.add_row(
            key, f"{shown} {measurement.units.get(key, '')}", f"{measurement.targets.get(key, '')} {mark}"
        )
    console.print(table)
    console.print(f"[dim]→ {path}[/]")


@app.command()
def simulate(
    transactions: Annotated[int, typer.Option(min=1000, help="Transactions to write to file.")] = 1_000_000,
    kafka_transactions: Annotated[int, typer.Option(min=1000, help="Transactions to publish.")] = 500_000,
) -> None:
    """Simulator throughput to a Parquet file and to the local Kafka broker (starts infra if needed)."""
    from fraudops_bench import simulate as bench
    from fraudops_infra.stack import LocalStack

    settings = get_settings()
    _show(bench.to_file(transactions))
    with console.status("making sure the local Kafka broker runs…"):
        LocalStack(settings).up()
    _show(bench.to_kafka(settings, kafka_transactions))


EntityFeatures = Annotated[
    bool,
    typer.Option(
        "--entity-features",
        help="Serve a model trained on the entity-risk features, with the entity-state component's table "
        "(trained on first use).",
    ),
]


def _stack_and_model(what: str, entity_features: bool = False) -> tuple[Settings, str]:
    """Start the local stack and make sure a model exists (trained on first use)."""
    from fraudops_cli.models import ensure_entity_model, ensure_model
    from fraudops_infra.stack import LocalStack

    settings = get_settings()
    with console.status(f"making sure {what} runs…"):
        LocalStack(settings).up()
    return settings, (ensure_entity_model if entity_features else ensure_model)(settings, console)


@app.command()
def stream(
    transactions: DrainTransactions = 300_000,
    customers: Annotated[
        int, typer.Option(min=100, help="Customers in the drain (state held in memory).")
    ] = 100_000,
    rate: StreamRate = 2000,
    seconds: RunSeconds = 60,
    entity_features: EntityFeatures = False,
    events_per_second: Annotated[
        float | None,
        typer.Option(
            min=1,
            help="The drain's backlog happened at this rate up to now (default: spread over 30 days).",
        ),
    ] = None,
) -> None:
    """One consumer: drain throughput and memory, then latency at a fixed offered load."""
    from fraudops_bench import stream as bench

    settings, model = _stack_and_model("PostgreSQL and Kafka", entity_features)
    with console.status(f"drain: {transactions:,} transactions through one consumer…"):
        drained = bench.drain(
            settings,
            model,
            transactions,
            customers,
            entity_features=entity_features,
            events_per_second=events_per_second,
        )
    _show(drained)
    with console.status(f"latency: {rate:,} transactions/s for {seconds} s…"):
        measured = bench.latency(settings, model, rate, seconds, entity_features=entity_features)
    _show(measured)


@app.command()
def train(
    transactions: Annotated[int, typer.Option(min=10_000)] = 1_000_000,
    trials: Trials = 30,
    timeout: TuningBudgetS = 600,
) -> None:
    """`fraudops train` on simulated history: time, peak memory, held-out AP against the baselines."""
    from fraudops_bench import training

    with console.status(f"training on {transactions:,} transactions with {trials} trials…"):
        measured = training.train(transactions, trials, timeout)
    _show(measured)


@app.command()
def serving(
    rate: GatewayRate = 500, seconds: RunSeconds = 60, entity_features: EntityFeatures = False
) -> None:
    """Gateway /predict latency at a constant rate, then the predictor's V2 throughput."""
    from fraudops_bench import gateway as gateway_bench
    from fraudops_bench import predictor as predictor_bench
    from fraudops_bench.stream import published_entity_table

    settings, model = _stack_and_model(
        "PostgreSQL and Kafka" if entity_features else "PostgreSQL", entity_features
    )
    with ExitStack() as stack:
        table = None
        if entity_features:
            with console.status("the entity-state component publishes the table of 200,000 transactions…"):
                table = stack.enter_context(published_entity_table(settings, model))
        with console.status(f"gateway: {rate} requests/s for {seconds} s…"):
            latency = gateway_bench.predict_latency(settings.db_url, model, rate, seconds, entity_table=table)
    _show(latency)
    with console.status("predictor: V2 batches of 1,000 rows…"):
        throughput = predictor_bench.v2_throughput(model, entity_features=entity_features)
    _show(throughput)


@app.command("loadtest")
def loadtest(
    seconds: Annotated[
        int, typer.Option(min=10, help="Duration of the steady gateway and predictor runs.")
    ] = 60,
    step_seconds: Annotated[int, typer.Option(min=8, help="Duration of each step of the knee profile.")] = 20,
) -> None:
    """Headless Locust against the gateway and the predictor, and the rate where p99 passes 10 ms."""
    from fraudops_bench import locust

    settings, model = _stack_and_model("PostgreSQL")
    with console.status("locust: predictor, gateway, then the stepped knee profile…"):
        measured = locust.loadtest(settings.db_url, model, seconds, step_seconds)
    _show(measured)


@app.command("tracing")
def tracing_overhead(
    transactions: DrainTransactions = 200_000,
    rate: StreamRate = 2000,
    gateway_rate: GatewayRate = 500,
    seconds: RunSeconds = 60,
) -> None:
    """Stream throughput and p99 and gateway p99 with tracing off, at 1% and at 100% sampling (Jaeger on loopback)."""
    from fraudops_bench import tracing

    _, model = _stack_and_model("PostgreSQL and Kafka")
    with console.status("tracing off, 1% and 100%: stream drain, stream latency, gateway latency each…"):
        measured = tracing.overhead(model, transactions, rate, gateway_rate, seconds)
    _show(measured)


@app.command()
def entities(
    transactions: Annotated[int, typer.Option(min=100_000)] = 3_000_000,
    entities: Annotated[int, typer.Option(min=10_000, help="Distinct entities to reach.")] = 1_000_000,
) -> None:
    """The entity table alone: throughput and memory at a million entities, snapshot and restore."""
    from fraudops_bench import entities as bench

    with console.status(f"entity table: {transactions:,} transactions over {entities:,} entities…"):
        measured = bench.entity_table(transactions, entities)
    _show(measured)


@app.command()
def quality(
    transactions: Annotated[int, typer.Option(min=50_000)] = 1_000_000,
    trials: Trials = 30,
    timeout: TuningBudgetS = 600,
) -> None:
    """Model quality on five columns and on shifted worlds, against the textbook baseline."""
    from fraudops_bench import quality as bench

    with console.status(f"quality: two trainings on {transactions:,} transactions, then two shifted worlds…"):
        measured = bench.quality(transactions, trials, timeout)
    _show(measured)


@app.command("load")
def load_large(
    transactions: Annotated[int, typer.Option(min=100_000)] = 10_000_000,
    trials: Trials = 2,
) -> None:
    """`fraudops train` on a ten-million-row five-column CSV: time and peak memory (budget 8 GiB)."""
    from fraudops_bench import loading

    with console.status(f"writing and training on a {transactions:,}-row CSV…"):
        measured = loading.train_ten_million(transactions, trials)
    _show(measured)


# Each with its command's defaults. Serving runs before the stream: the stream leaves PostgreSQL
# writing out hundreds of megabytes.
BENCHES: dict[str, Callable[[], None]] = {
    "simulate": simulate,
    "serving": serving,
    "stream": stream,
    "train": train,
    "entities": entities,
    "quality": quality,
    "load": load_large,
    "tracing": tracing_overhead,
}


@app.command("all")
def run_all() -> None:
    """Every benchmark, in turn."""
    for name, run in BENCHES.items():
        console.rule(name)
        run()
