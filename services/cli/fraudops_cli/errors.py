"""How the CLI ends on an error: one line that says what to do, never a traceback."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError
from rich.console import Console

from fraudops.config import describe_invalid_settings
from fraudops.errors import FraudopsError

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def error_line(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` as the one error line and return the Exit to raise."""
    error_line(message)
    return typer.Exit(code)


def run_app(app: typer.Typer) -> None:
    """Run the Typer app; every expected error becomes a single line and a non-zero exit code."""
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        error_line("aborted")
        sys.exit(130)
    except typer.TyperException as exc:
        # Typer vendors click: usage errors and bad parameters arrive here (the public base class).
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            typer.echo(ctx.get_help())
            sys.exit(0)
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        error_line(f"{message}{hint}")
        sys.exit(getattr(exc, "exit_code", 2))
    except ValidationError as exc:
        # Settings are the only pydantic model validated outside a command's own handling.
        error_line(describe_invalid_settings(exc))
        sys.exit(1)
    except FraudopsError as exc:
        error_line(str(exc))
        sys.exit(1)
    except KeyboardInterrupt:
        error_line("interrupted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
