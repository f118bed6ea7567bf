"""send_json, the one raw-ASGI JSON response of the fast path and the guards: the two messages an ASGI
server expects, with the body's type and length and the caller's headers."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from fraudops_gateway.asgi import send_json


def test_a_json_response_is_a_start_with_type_length_and_headers_then_the_whole_body() -> None:
    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(send_json(send, 429, b'{"error":"slow down"}', [(b"retry-after", b"1")]))

    assert sent == [
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"21"),
                (b"retry-after", b"1"),
            ],
        },
        {"type": "http.response.body", "body": b'{"error":"slow down"}'},
    ]
