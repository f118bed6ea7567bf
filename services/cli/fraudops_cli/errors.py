"""How the CLI ends on an error: one line that says what to do, never a traceback."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from fraudops.errors import FraudopsError

err_console = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` as the one error line and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def run_app(app: typer.Typer) -> None:
    """Run the Typer app; expected errors become one line and exit code 1."""
    try:
        app(standalone_mode=True)
    except FraudopsError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
