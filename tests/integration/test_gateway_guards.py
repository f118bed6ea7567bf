"""The gateway's guards on a real process: API keys (GATEWAY_API_KEYS), the per-client rate limit, and
who a client is when no keys are configured (X-Forwarded-For only from GATEWAY_TRUSTED_PROXIES)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fraudops_gateway.schemas import LEGACY_EXAMPLE
from tests.integration.test_gateway_support import Served, gateway

pytestmark = pytest.mark.integration
LIMIT = "5 per 10 seconds"


@pytest.fixture(scope="module")
def served(
    database: str, trained_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("guards")
    with gateway(
        database,
        trained_artifact,
        folder / "gateway.log",
        gateway_api_keys="key-one, key-two",
        gateway_rate_limit=LIMIT,
    ) as server:
        yield server
        assert server.stop(), server.log_tail()


@pytest.mark.parametrize(
    "headers", [{}, {"X-API-Key": "key-three"}, {"X-API-Key": "KEY-ONE"}, {"X-API-Key": ""}]
)
def test_a_request_without_a_valid_api_key_is_401(served: Served, headers: dict[str, str]) -> None:
    response = httpx.post(served.url + "/predict", json=LEGACY_EXAMPLE, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "ApiKey"
    assert "X-API-Key" in response.json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/feedback", {"transaction_id": "t-1", "is_fraud": True}),
        ("POST", "/predict/batch", {"transactions": [LEGACY_EXAMPLE]}),
        ("GET", "/transactions/t-1", None),
    ],
)
def test_every_operation_but_health_and_metrics_needs_a_key(
    served: Served, method: str, path: str, body: dict | None
) -> None:
    response = httpx.request(method, served.url + path, json=body)

    assert response.status_code == 401, response.text


def test_the_openapi_document_states_that_a_key_is_required(served: Served) -> None:
    document = httpx.get(served.url + "/openapi.json").json()

    assert document["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "One of the keys in GATEWAY_API_KEYS.",
    }
    guarded = {
        (path, method)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if operation.get("security") == [{"ApiKey": []}]
    }
    assert {
        ("/predict", "post"),
        ("/predict/batch", "post"),
        ("/feedback", "post"),
        ("/transactions/{transaction_id}", "get"),
    } == guarded


def test_each_configured_key_is_accepted_and_health_needs_none(served: Served) -> None:
    for key in ("key-one", "key-two"):
        assert (
            httpx.post(served.url + "/predict", json=LEGACY_EXAMPLE, headers={"X-API-Key": key}).status_code
            == 200
        )
    assert httpx.get(served.url + "/health/ready").status_code == 200
    assert httpx.get(served.url + "/metrics").status_code == 200


def test_a_client_over_its_rate_is_429_and_other_clients_are_not(served: Served) -> None:
    with httpx.Client(base_url=served.url, headers={"X-API-Key": "key-one"}) as one:
        responses = [one.post("/predict", json=LEGACY_EXAMPLE) for _ in range(20)]
    other = httpx.post(served.url + "/predict", json=LEGACY_EXAMPLE, headers={"X-API-Key": "key-two"})

    statuses = [response.status_code for response in responses]
    assert 1 <= statuses.count(200) <= 8 and statuses[-1] == 429, statuses  # a burst of 5, then 1 per 2 s
    limited = responses[-1]
    assert limited.headers["retry-after"] == "1"
    assert "rate limit of 5 per 10 second exceeded" in limited.json()["error"]
    assert other.status_code == 200, "the limit is per client (per API key)"


# --- without keys: the client's address ----------------------------------------------------------------


@pytest.fixture(scope="module", params=["untrusted", "trusted"])
def keyless(
    request: pytest.FixtureRequest,
    database: str,
    trained_artifact: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Served]]:
    """A gateway without keys whose trusted proxies are elsewhere (192.0.2.0/24), or the test itself."""
    proxies = {"untrusted": "192.0.2.0/24", "trusted": "127.0.0.1"}[request.param]
    log = tmp_path_factory.mktemp(f"keyless-{request.param}") / "gateway.log"
    with gateway(
        database, trained_artifact, log, gateway_rate_limit=LIMIT, gateway_trusted_proxies=proxies
    ) as server:
        yield request.param, server
        assert server.stop(), server.log_tail()


def test_a_forwarded_for_header_counts_only_from_a_trusted_proxy(keyless: tuple[str, Served]) -> None:
    trust, served = keyless
    with httpx.Client(base_url=served.url) as client:
        # a new "client" per request: only a trusted proxy may say so
        spoofed = [
            client.post(
                "/predict", json=LEGACY_EXAMPLE, headers={"X-Forwarded-For": f"198.51.100.{i}"}
            ).status_code
            for i in range(20)
        ]
        one_client = [
            client.post(
                "/predict", json=LEGACY_EXAMPLE, headers={"X-Forwarded-For": "203.0.113.9, 127.0.0.1"}
            ).status_code
            for _ in range(20)
        ]

    if trust == "untrusted":
        assert spoofed.count(429) >= 12, "X-Forwarded-For from an untrusted peer must not make new clients"
    else:
        assert spoofed.count(429) == 0, "behind a trusted proxy, each forwarded client has its own limit"
        assert one_client.count(429) >= 12, "the forwarded client (left of the trusted proxy) is limited"
