"""Request guards in front of the API: body size limit, optional API keys, per-client rate limiting.

Pure ASGI middleware (no per-request task or response wrapping), so the guards add microseconds.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from fraudops_gateway import metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
OPEN_PATHS = ("/health/", "/metrics", "/docs", "/openapi.json", "/redoc")


async def _reply(send: Send, status: int, error: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = orjson.dumps({"error": error, "errors": []})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class Guards:
    def __init__(self, app: ASGIApp, api_keys: list[str], rate_limit: str, max_body_bytes: int) -> None:
        self.app = app
        self.api_keys = [key.encode() for key in api_keys if key]
        self.limit = parse(rate_limit)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        client = self._authenticate(headers, scope.get("client"))
        if client is None:
            metrics.REJECTED.labels("unauthenticated").inc()
            await _reply(send, 401, "missing or invalid API key (send it in the X-API-Key header)",
                         [(b"www-authenticate", b"ApiKey")])
            return
        if not self.limiter.hit(self.limit, client):
            metrics.REJECTED.labels("rate_limited").inc()
            await _reply(send, 429, f"rate limit of {self.limit} exceeded for this client; retry shortly",
                         [(b"retry-after", b"1")])
            return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            metrics.REJECTED.labels("body_too_large").inc()
            await _reply(send, 413, f"request body of {int(declared)} bytes exceeds the limit of "
                                    f"{self.max_body_bytes} bytes")
            return
        await self.app(scope, self._capped(receive, send), send)

    def _authenticate(self, headers: dict[bytes, bytes], peer: tuple[str, int] | None) -> str | None:
        """The rate-limit identity: the API key when keys are configured, else the client address."""
        if not self.api_keys:
            forwarded = headers.get(b"x-forwarded-for", b"").split(b",")[0].strip().decode(errors="replace")
            return forwarded or (peer[0] if peer else "unknown")
        offered = headers.get(b"x-api-key", b"")
        for key in self.api_keys:
            if hmac.compare_digest(offered, key):
                return "key:" + key[:6].decode(errors="replace")
        return None

    def _capped(self, receive: Receive, send: Send) -> Receive:
        """A receive() that refuses bodies streamed past the limit (chunked uploads have no length)."""
        seen = 0

        async def receive_capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    metrics.REJECTED.labels("body_too_large").inc()
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        return receive_capped


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds the limit of {limit} bytes")
        self.limit = limit
