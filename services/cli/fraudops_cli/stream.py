"""`fraudops stream consume`: the stateful scoring consumer."""

from __future__ import annotations

from typing import Annotated

import typer

from fraudops.config import get_settings
from fraudops.features.spec import DAY, FeatureConfig
from fraudops.logs import configure_logging
from fraudops_stream.entity_health import HealthLimits

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
    max_poll_interval: Annotated[
        float,
        typer.Option(
            min=15,
            help="Seconds a batch may take (an outage of the database or a model server is waited out "
            "inside it) before the group gives the consumer's partitions to another.",
        ),
    ] = 600.0,
) -> None:
    """Consume transactions, score them, store decisions in PostgreSQL, publish alerts. SIGTERM ends cleanly."""
    from fraudops.lean import settle_garbage_collection, without_training_libraries

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
        max_poll_interval_s=max_poll_interval,
    )
    settle_garbage_collection()  # a process of its own: what start-up left lives as long as it does
    StreamConsumer(settings, options).run()


@app.command()
def entities(
    metrics_port: Annotated[
        int, typer.Option(min=0, max=65535, help="Serve /metrics on this port (0: off).")
    ] = 9103,
    idle_exit: Annotated[
        float | None, typer.Option(help="Exit after this many seconds without records.")
    ] = None,
    snapshot_every: Annotated[
        int, typer.Option(min=1, help="Epochs at least between full snapshots of the entity table.")
    ] = 240,
    snapshot_rows_share: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="A snapshot waits until the deltas since the last one hold this share of the table's rows "
            "(0: every --snapshot-every epochs).",
        ),
    ] = 1.0,
    retain_epochs: Annotated[
        int,
        typer.Option(
            min=1,
            help="Epochs of published deltas kept behind the newest: how far (in event time) a stream "
            "consumer may fall behind the component and still read every record at its own epoch.",
        ),
    ] = 1440,
    label_delay_days: Annotated[
        float,
        typer.Option(help="Label delay of the entity features: the model's (its artifact's feature_config)."),
    ] = FeatureConfig().label_delay_s / DAY,
    epoch_seconds: Annotated[
        float,
        typer.Option(help="Entity epoch length: the model's (its artifact's feature_config)."),
    ] = FeatureConfig().entity_epoch_s,
    outage_limit: Annotated[
        float,
        typer.Option(
            min=1,
            help="Seconds without an answer from PostgreSQL or Kafka after which /livez answers 503 (waiting "
            "for the table another instance holds does not count).",
        ),
    ] = HealthLimits().outage_limit_s,
) -> None:
    """Run the entity-state component: every partition in, the entity table published per epoch (PostgreSQL)."""
    from fraudops.lean import settle_garbage_collection, without_training_libraries

    without_training_libraries()
    from fraudops_stream.entity_component import EntityComponentOptions, EntityStateComponent

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    options = EntityComponentOptions(
        metrics_port=metrics_port or None,
        idle_exit_s=idle_exit,
        snapshot_every_epochs=snapshot_every,
        snapshot_rows_share=snapshot_rows_share,
        retain_epochs=retain_epochs,
        health=HealthLimits(outage_limit_s=outage_limit),
    )
    try:
        config = FeatureConfig(label_delay_s=label_delay_days * DAY, entity_epoch_s=epoch_seconds)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    settle_garbage_collection()  # a process of its own: what start-up left lives as long as it does
    EntityStateComponent(settings, options, config).run()
