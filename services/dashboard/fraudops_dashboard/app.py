"""The dashboard's HTTP surface: the page, its JSON snapshot, and a health check (Starlette on uvicorn)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.routing import Route

from fraudops_dashboard.snapshot import SnapshotReader

PAGE = files("fraudops_dashboard").joinpath("page.html").read_text()


def create_app(reader: SnapshotReader) -> Starlette:
    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        reader.open()
        try:
            yield
        finally:
            reader.close()

    async def page(_: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    async def snapshot(_: Request) -> JSONResponse:
        return JSONResponse((await run_in_threadpool(reader.read)).to_json())

    async def health(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[Route("/", page), Route("/api/snapshot", snapshot), Route("/health", health)],
        lifespan=lifespan,
    )


def serve(
    db_url: str, metrics_urls: Sequence[str], routing_table: Path | None, host: str, port: int, window_s: int
) -> None:
    reader = SnapshotReader(db_url, metrics_urls, routing_table, window_s=window_s)
    uvicorn.run(create_app(reader), host=host, port=port, log_level="warning")
