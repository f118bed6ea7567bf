"""`fraudops bench …`: measure, write loadtest/results/<name>.json and BENCH.md, print the table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from fraudops.config import get_settings
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Benchmarks: numbers as JSON and a markdown table (loadtest/results/).",
                  no_args_is_help=True)
console = Console(highlight=False)


def _show(measurement) -> None:  # type: ignore[no-untyped-def]
    from fraudops_bench.results import save

    path = save(measurement)
    table = Table(title=f"{measurement.name} — {measurement.description}", box=None, title_justify="left")
    for column in ("number", "value", "target"):
        table.add_column(column)
    verdicts = measurement.passed()
    for key, value in measurement.numbers.items():
        mark = {True: "[green]✓[/]", False: "[red]✗[/]"}.get(verdicts.get(key), "")
        table.add_row(key, f"{value:,.1f} {measurement.units.get(key, '')}",
                      f"{measurement.targets.get(key, '')} {mark}")
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


BENCHES: dict[str, Callable[[], None]] = {"simulate": lambda: simulate(1_000_000, 500_000)}


@app.command("all")
def run_all() -> None:
    """Every benchmark, in turn."""
    for name, run in BENCHES.items():
        console.rule(name)
        run()
