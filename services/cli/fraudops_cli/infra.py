"""`fraudops infra up|down|status`: the local PostgreSQL and Kafka on loopback."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from fraudops.config import get_settings
from fraudops_infra.stack import LocalStack

app = typer.Typer(
    help="Local PostgreSQL and Kafka on loopback (installed and started on demand).", no_args_is_help=True
)
console = Console(highlight=False)


@app.command()
def up() -> None:
    """Install what is missing, start PostgreSQL and Kafka, migrate the schema, create the topics."""
    stack = LocalStack(get_settings())
    with console.status("bringing the local stack up (first run resolves Kafka's jars from Maven Central)…"):
        steps = stack.up()
    for name, outcome in steps:
        console.print(f"[green]✓[/] {name:<9} {outcome}")
    _print_status(stack)


@app.command()
def down(
    delete_data: Annotated[
        bool,
        typer.Option(
            help="Also delete the databases and Kafka's data (the "
            "PostgreSQL cluster may live outside the run folder)."
        ),
    ] = False,
) -> None:
    """Stop everything `infra up` started (its data stays, unless --delete-data)."""
    for name, outcome in LocalStack(get_settings()).down(delete_data):
        console.print(f"[green]✓[/] {name:<9} {outcome}")


@app.command()
def status() -> None:
    """What runs where."""
    _print_status(LocalStack(get_settings()))


def _print_status(stack: LocalStack) -> None:
    for item in stack.status():
        state = "[green]running[/]" if item.running else "[dim]stopped[/] "
        console.print(f"{item.name:<9} {state} {item.address}", soft_wrap=True)
        console.print(f"{'':<9} [dim]{item.details}[/]", soft_wrap=True)
