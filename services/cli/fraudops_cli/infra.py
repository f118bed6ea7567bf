"""`fraudops infra up|down|status` (placeholder, being written)."""

import typer

app = typer.Typer(help="Local PostgreSQL and Kafka on loopback.", no_args_is_help=True)
