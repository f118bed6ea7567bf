"""Run the gateway with uvicorn (uvloop + httptools); SIGTERM drains pending decisions before exit."""

from __future__ import annotations

import uvicorn
from fraudops.config import get_settings
from fraudops.logs import configure_logging

from fraudops_gateway.app import build_asgi


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(build_asgi(settings), host=host, port=port, loop="uvloop", http="httptools", access_log=False,
                log_config=None, timeout_graceful_shutdown=30, backlog=2048)


if __name__ == "__main__":
    serve()
