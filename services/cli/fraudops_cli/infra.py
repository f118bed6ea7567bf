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


@app.command()
def migrate() -> None:
    """Bring the schema of the PostgreSQL at DB_URL (any server, not only the local one) to the latest
    revision. The platform chart's migration Job runs this."""
    from fraudops.db import migrate as schema

    settings = get_settings()
    schema.upgrade(settings.db_url)
    console.print(f"[green]✓[/] schema at revision {schema.current_revision(settings.db_url)}")


@app.command()
def topics(
    replication_factor: Annotated[int, typer.Option(min=1, help="Replicas of each new topic.")] = 1,
    wait_s: Annotated[
        float, typer.Option(min=0, help="Wait up to this many seconds for the broker to answer first.")
    ] = 0,
) -> None:
    """Create the platform topics missing on KAFKA_BOOTSTRAP_SERVERS (clusters whose Kafka is not run by
    Strimzi, which creates them from KafkaTopic objects)."""
    from confluent_kafka.admin import AdminClient

    from fraudops.kafka import client_config
    from fraudops_infra.kafka import create_platform_topics, wait_for_broker

    settings = get_settings()
    admin = AdminClient(client_config(settings, **{"socket.timeout.ms": 5000}))
    if wait_s:
        wait_for_broker(admin, wait_s)
    created = create_platform_topics(admin, settings, replication_factor)
    console.print(f"[green]✓[/] topics created: {', '.join(created) or 'none (all exist)'}")


def _print_status(stack: LocalStack) -> None:
    for item in stack.status():
        state = "[green]running[/]" if item.running else "[dim]stopped[/] "
        console.print(f"{item.name:<9} {state} {item.address}", soft_wrap=True)
        console.print(f"{'':<9} [dim]{item.details}[/]", soft_wrap=True)
