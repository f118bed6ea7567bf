"""Request guards in front of the API: optional API keys, a per-client rate limit, the body size limit.

Pure ASGI middleware (no per-request task or response wrapping), so the guards add microseconds.
A body whose declared length is over the limit is refused before it is read; a chunked one when
it grows past the limit (`receive` raises `Refused`, which both the fast path and FastAPI's
handlers answer with 413).

When API keys are configured every operation but health, metrics and the docs needs one, and the
key is the rate-limit identity. Without keys the identity is the client's address: the peer's own,
unless the peer is a trusted proxy (GATEWAY_TRUSTED_PROXIES) — only then is X-Forwarded-For read,
from the right, up to the first address that is not a trusted proxy. (Any client can write that
header: trusted blindly, each request could name a new "client" and never be limited.)
"""

from __future__ import annotations

import hmac
import ipaddress
import time

import orjson
from limits import parse

from fraudops_gateway import metrics
from fraudops_gateway.asgi import ASGIApp, Message, Receive, Scope, Send, send_json
from fraudops_gateway.errors import Refused
from fraudops_gateway.schemas import ErrorResponse

OPEN_PATHS = ("/health/", "/metrics", "/docs", "/openapi.json", "/redoc")
Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address: str, trusted_proxies: Networks) -> bool:
    parsed = _address(address)
    return parsed is not None and any(parsed in network for network in trusted_proxies)


def client_address(peer: str | None, forwarded_for: bytes | None, trusted_proxies: Networks) -> str:
    """The address a request is limited by: the peer, or (from a trusted proxy) who the proxies forwarded for."""
    if peer is None:
        return "unknown"
    if not forwarded_for or not trusted_proxies or not _trusted(peer, trusted_proxies):
        return peer
    hops = [hop.strip() for hop in forwarded_for.decode("latin-1").split(",")]
    for hop in reversed(hops):  # appended by each proxy in turn: the nearest is last
        if _address(hop) is None:
            return peer  # a hop that is no address: the header cannot be trusted past it
        if not _trusted(hop, trusted_proxies):
            return hop
    return hops[0]  # every hop a trusted proxy: the first one is the client


async def reply(
    send: Send, status: int, error: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """An `ErrorResponse` body sent straight from ASGI."""
    await send_json(send, status, orjson.dumps({"error": error, "errors": []}), headers or ())


class TokenBuckets:
    """Per-client token buckets: `amount` requests per `window_s`, refilled continuously.

    In-process and O(1) per request. (`limits`' MemoryStorage starts a timer thread every 10 ms
    while traffic flows and keeps a list entry per request; both showed up in the gateway's p99.)
    """

    def __init__(self, rate_limit: str, max_clients: int = 100_000) -> None:
        item = parse(rate_limit)  # the `limits` syntax: "2000/second", "100 per 5 minutes"
        self.description = str(item)
        self.capacity = float(item.amount)
        self.per_second = item.amount / item.get_expiry()
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)

    def allow(self, client: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.per_second)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            return False
        if len(self._buckets) >= self.max_clients and client not in self._buckets:
            self._forget_full_buckets(now)
        self._buckets[client] = (tokens - 1.0, now)
        return True

    def _forget_full_buckets(self, now: float) -> None:
        """Drop clients whose bucket has refilled: forgetting them changes nothing."""
        self._buckets = {
            client: (tokens, at)
            for client, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.per_second < self.capacity
        }


class Guards:
    def __init__(
        self,
        app: ASGIApp,
        api_keys: list[str],
        rate_limit: str,
        max_body_bytes: int,
        trusted_proxies: Networks = (),
    ) -> None:
        self.app = app
        self.api_keys = [key.encode() for key in api_keys if key]
        self.trusted_proxies = trusted_proxies
        self.buckets = TokenBuckets(rate_limit)
        self.max_body_bytes = max_body_bytes
        self.too_large = f"request body exceeds the limit of {max_body_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        client = self._authenticate(headers, scope.get("client"))
        if client is None:
            metrics.REJECTED.labels("unauthenticated").inc()
            await reply(
                send,
                401,
                "missing or invalid API key (send it in the X-API-Key header)",
                [(b"www-authenticate", b"ApiKey")],
            )
            return
        if not self.buckets.allow(client):
            metrics.REJECTED.labels("rate_limited").inc()
            await reply(
                send,
                429,
                f"rate limit of {self.buckets.description} exceeded for this client; retry shortly",
                [(b"retry-after", b"1")],
            )
            return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            metrics.REJECTED.labels("body_too_large").inc()
            await reply(send, 413, self.too_large)
            return
        await self.app(scope, self._capped(receive), send)

    def _capped(self, receive: Receive) -> Receive:
        """A receive() that refuses a body streamed past the limit (chunked uploads declare no length)."""
        seen = 0

        async def receive_capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    metrics.REJECTED.labels("body_too_large").inc()
                    raise Refused(413, ErrorResponse(error=self.too_large))
            return message

        return receive_capped

    def _authenticate(self, headers: dict[bytes, bytes], peer: tuple[str, int] | None) -> str | None:
        """The rate-limit identity: the API key when keys are configured, else the client address."""
        if not self.api_keys:
            return client_address(
                peer[0] if peer else None, headers.get(b"x-forwarded-for"), self.trusted_proxies
            )
        offered = headers.get(b"x-api-key", b"")
        for number, key in enumerate(self.api_keys):
            if hmac.compare_digest(offered, key):
                return f"key:{number}"  # the key's position, never its text: identities end up in logs
        return None
