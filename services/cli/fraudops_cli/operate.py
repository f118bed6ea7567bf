"""`fraudops operator run`: the Kopf operator for FraudModel and TrainingRun, standalone."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    help="The Kubernetes operator: FraudModel rollouts and TrainingRun jobs.", no_args_is_help=True
)


@app.callback()
def operator() -> None:
    """The Kubernetes operator: FraudModel rollouts and TrainingRun jobs."""


@app.command()
def run(
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace", "-n", help="Watch only this namespace (repeatable). Default: all namespaces."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option(help="Log every handler call.")] = False,
    liveness: Annotated[
        str | None, typer.Option(help="Serve a liveness probe, e.g. http://0.0.0.0:8080/healthz.")
    ] = None,
    peering: Annotated[
        str | None,
        typer.Option(help="Kopf peering object shared by replicas (only one acts); default: standalone."),
    ] = None,
) -> None:
    """Reconcile FraudModels and TrainingRuns against the current kubeconfig context (or in-cluster
    credentials) until interrupted. Tick and resync: FRAUDOPS_OPERATOR_TICK_S, FRAUDOPS_OPERATOR_RESYNC_S."""
    from fraudops_operator.main import run as run_operator

    run_operator(namespaces=namespace or [], verbose=verbose, liveness_endpoint=liveness, peering=peering)
