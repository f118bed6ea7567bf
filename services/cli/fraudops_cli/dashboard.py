"""`fraudops dashboard`: the built-in live page for people without Grafana."""

from __future__ import annotations

from typing import Annotated

import typer

from fraudops.config import get_settings
from fraudops.logs import configure_logging


def dashboard(
    host: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0 in a container).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8050,
    metrics_url: Annotated[
        list[str] | None,
        typer.Option(help="A service's /metrics to read drift and rollout state from (repeat for several)."),
    ] = None,
    window_s: Annotated[int, typer.Option(min=60, help="How far back the charts reach, in seconds.")] = 600,
) -> None:
    """Live throughput, latency, fraud rate, recent alerts, drift and rollout state (from PostgreSQL and /metrics)."""
    from fraudops_dashboard.app import serve

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    serve(settings.db_url, metrics_url or [], settings.routing_table_path, host, port, window_s)
