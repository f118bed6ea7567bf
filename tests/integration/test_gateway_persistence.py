"""The gateway's decision writer when PostgreSQL refuses a row: isolated, logged, counted; the others stored.

Validation keeps every answered transaction storable, so the test makes the database stricter than
the API: a CHECK constraint refuses one amount. The gateway answers that request (the write is off
the response path), then stores everything else it answered and reports the one it could not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fraudops_infra.stack import LocalStack
from tests.integration.test_gateway_support import (
    Served,
    gateway,
    migrated_database,
    stored_rows,
    wait_until_stored,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
REFUSED_AMOUNT = 13.37


@pytest.fixture()
def strict_database(local_stack: LocalStack) -> Iterator[str]:
    with migrated_database(local_stack, "refusing") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                f"ALTER TABLE transactions ADD CONSTRAINT refuse_one_amount CHECK (amount <> {REFUSED_AMOUNT})"
            )
        yield url


@pytest.fixture()
def served(strict_database: str, trained_artifact: Path, tmp_path: Path) -> Iterator[Served]:
    with gateway(strict_database, trained_artifact, tmp_path / "gateway.log") as server:
        yield server
        assert server.stop(), server.log_tail()


def persist_failed(url: str) -> float:
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(url + "/metrics").text)}
    return sum(
        s.value for s in families["fraudops_gateway_persist_failed"].samples if s.name.endswith("_total")
    )


def test_a_refused_row_is_isolated_logged_and_counted_and_every_other_decision_is_stored(
    served: Served, strict_database: str
) -> None:
    payload = {"merchant_category": "grocery", "source": "POS", "is_international": False, "hour_of_day": 10}
    answers = [
        httpx.post(served.url + "/predict", json={**payload, "amount": amount}).json()
        for amount in (12.5, REFUSED_AMOUNT, 99.0)
    ]  # answered within one flush interval
    refused, stored = (
        answers[1]["transaction_id"],
        [answers[0]["transaction_id"], answers[2]["transaction_id"]],
    )

    wait_until_stored(strict_database, stored)
    later = httpx.post(served.url + "/predict", json={**payload, "amount": 7.0}).json()["transaction_id"]
    wait_until_stored(strict_database, [later])

    assert all("fraud_probability" in answer for answer in answers), "every request was answered"
    assert not stored_rows(strict_database, "SELECT 1 FROM decisions WHERE transaction_id = %s", refused)
    assert persist_failed(served.url) == 1
    wait_until(
        lambda: "decision not stored: the database refused it" in served.log.read_text(),
        5,
        "the refused decision in the gateway's log",
        interval_s=0.1,
    )
    line = next(line for line in served.log.read_text().splitlines() if "decision not stored" in line)
    assert refused in line and "refuse_one_amount" in line, line
