"""`fraudops` — wires each verb to the part that does the work; no business logic lives here."""

from __future__ import annotations

import typer

from fraudops_cli import bench, dashboard, demo, infra, operate, serve, simulate, stream, train
from fraudops_cli.errors import run_app

app = typer.Typer(
    name="fraudops",
    help="Real-time bank-fraud detection: local infrastructure, simulation, training, serving, streaming.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(infra.app, name="infra")
app.add_typer(serve.app, name="serve")
app.add_typer(stream.app, name="stream")
app.add_typer(bench.app, name="bench")
app.add_typer(operate.app, name="operator")
app.command("simulate")(simulate.simulate)
app.command("train")(train.train)
app.command("demo")(demo.demo)
app.command("dashboard")(dashboard.dashboard)


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
