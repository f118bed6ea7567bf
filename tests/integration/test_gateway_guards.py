"""The gateway's guards on a real process: API keys (GATEWAY_API_KEYS) and the per-client rate limit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fraudops_infra.stack import LocalStack
from tests.integration.test_gateway_support import Served, gateway, migrated_database

pytestmark = pytest.mark.integration
LEGACY = {
    "amount": 25.0,
    "merchant_category": "grocery",
    "source": "POS",
    "is_international": False,
    "hour_of_day": 9,
}


@pytest.fixture(scope="module")
def served(
    local_stack: LocalStack, trained_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("guards")
    with (
        migrated_database(local_stack, "guards") as database,
        gateway(
            database,
            trained_artifact,
            folder / "gateway.log",
            gateway_api_keys="key-one, key-two",
            gateway_rate_limit="5 per 10 seconds",
        ) as server,
    ):
        yield server
        assert server.stop(), server.log_tail()


@pytest.mark.parametrize(
    "headers", [{}, {"X-API-Key": "key-three"}, {"X-API-Key": "KEY-ONE"}, {"X-API-Key": ""}]
)
def test_a_request_without_a_valid_api_key_is_401(served: Served, headers: dict[str, str]) -> None:
    response = httpx.post(served.url + "/predict", json=LEGACY, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "ApiKey"
    assert "X-API-Key" in response.json()["error"]


def test_each_configured_key_is_accepted_and_health_needs_none(served: Served) -> None:
    for key in ("key-one", "key-two"):
        assert httpx.post(served.url + "/predict", json=LEGACY, headers={"X-API-Key": key}).status_code == 200
    assert httpx.get(served.url + "/health/ready").status_code == 200
    assert httpx.get(served.url + "/metrics").status_code == 200


def test_a_client_over_its_rate_is_429_and_other_clients_are_not(served: Served) -> None:
    with httpx.Client(base_url=served.url, headers={"X-API-Key": "key-one"}) as one:
        statuses = [one.post("/predict", json=LEGACY).status_code for _ in range(20)]
    other = httpx.post(served.url + "/predict", json=LEGACY, headers={"X-API-Key": "key-two"})

    assert 1 <= statuses.count(200) <= 8 and statuses[-1] == 429, statuses  # a burst of 5, then 1 per 2 s
    limited = httpx.post(served.url + "/predict", json=LEGACY, headers={"X-API-Key": "key-one"})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert "rate limit of 5 per 10 second exceeded" in limited.json()["error"]
    assert other.status_code == 200, "the limit is per client (per API key)"
