"""`fraudops serve predictor|gateway`: the two HTTP surfaces."""

from __future__ import annotations

from typing import Annotated

import typer

from fraudops.config import get_settings
from fraudops.logs import configure_logging

app = typer.Typer(help="Serve models: the KServe predictor and the /predict gateway.", no_args_is_help=True)


@app.command()
def predictor(
    model_uri: Annotated[
        str | None, typer.Option(help="Artifact folder or storage URI (default: MODEL_PATH).")
    ] = None,
    name: Annotated[str, typer.Option(help="Model name in the KServe URL paths.")] = "card-fraud",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8081,
) -> None:
    """The KServe model server (V1 + V2 REST) for one model artifact."""
    from fraudops.lean import without_training_libraries

    without_training_libraries()
    from fraudops_predictor.server import serve

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    serve(model_uri or settings.model_path, name, port)


@app.command()
def gateway(
    host: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0 in a container).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
) -> None:
    """The public /predict API (FastAPI on uvicorn)."""
    from fraudops.lean import without_training_libraries

    without_training_libraries()
    from fraudops_gateway.server import serve

    serve(host, port)
