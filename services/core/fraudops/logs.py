"""Structured JSON logging for every process (one JSON object per line on stderr or a file)."""

from __future__ import annotations

import logging
import sys
from typing import IO

from pythonjsonlogger.json import JsonFormatter

_CONSOLE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str = "INFO", fmt: str = "json", stream: IO[str] | None = None) -> None:
    """Route all logging through one handler; `fmt` is `json` (machines) or `console` (humans)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                timestamp=False,
            )
        )
    else:
        handler.setFormatter(logging.Formatter(_CONSOLE_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Chatty libraries stay at WARNING unless we are debugging.
    for noisy in ("kafka", "urllib3", "httpx", "alembic", "numba"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))
