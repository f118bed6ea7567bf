"""`fraudops stream consume`: the stateful scoring consumer."""

from __future__ import annotations

from typing import Annotated

import typer

from fraudops.config import get_settings
from fraudops.logs import configure_logging

app = typer.Typer(help="The Kafka stream: consume, score, store, alert.", no_args_is_help=True)


@app.command()
def consume(
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Records per batch (default: BATCH_SIZE).")
    ] = None,
    metrics_port: Annotated[
        int, typer.Option(min=0, max=65535, help="Serve /metrics on this port (0: off).")
    ] = 9102,
    checkpoint_interval: Annotated[
        float, typer.Option(min=1, help="Seconds between state checkpoints.")
    ] = 30.0,
    idle_exit: Annotated[
        float | None, typer.Option(help="Exit after this many seconds without records.")
    ] = None,
) -> None:
    """Consume transactions, score them, store decisions in PostgreSQL, publish alerts. SIGTERM ends cleanly."""
    from fraudops.lean import without_training_libraries

    without_training_libraries()
    from fraudops.tracing import configure_tracing
    from fraudops_stream.consumer import ConsumerOptions, StreamConsumer

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    configure_tracing("fraudops-stream")
    options = ConsumerOptions(
        batch_size=batch_size or settings.batch_size,
        metrics_port=metrics_port or None,
        checkpoint_interval_s=checkpoint_interval,
        idle_exit_s=idle_exit,
    )
    StreamConsumer(settings, options).run()
