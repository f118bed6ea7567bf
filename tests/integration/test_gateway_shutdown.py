"""SIGTERM under load: the gateway finishes what it answered, drains its queue, and loses no decision."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest

from fraudops_infra.stack import LocalStack
from tests.integration.test_gateway_support import gateway, migrated_database, stored_rows

pytestmark = pytest.mark.integration
WORKERS = 16


async def _load(url: str, stop_after_answers: int, terminate: asyncio.Event) -> list[tuple[str, int, float]]:
    """Closed-loop clients posting /predict until the gateway stops answering: (id, status, answered at)."""
    answered: list[tuple[str, int, float]] = []
    flowing = asyncio.Event()  # set once `stop_after_answers` answers are in
    run = uuid.uuid4().hex[:8]

    async def worker(number: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            sequence = 0
            while True:
                sequence += 1
                transaction_id = f"sigterm-{run}-{number}-{sequence}"
                payload = {
                    "transaction_id": transaction_id,
                    "customer_id": f"sigterm-{run}-{sequence % 300}",
                    "amount": 10.0 + sequence % 700,
                    "channel": "WEB",
                    "device_id": f"d-{number}",
                }
                try:
                    response = await client.post("/predict", json=payload)
                except httpx.TransportError:  # the gateway has stopped accepting work
                    return
                answered.append((transaction_id, response.status_code, time.monotonic()))
                if len(answered) >= stop_after_answers:
                    flowing.set()
                if terminate.is_set() and response.status_code != 200:
                    return

    async def stop_later() -> None:
        """SIGTERM once the load is flowing: `stop_after_answers` answers in (within 60 s)."""
        try:
            await asyncio.wait_for(flowing.wait(), timeout=60)
        except TimeoutError:
            raise AssertionError(f"only {len(answered)} answers within 60 s") from None
        terminate.set()

    await asyncio.gather(stop_later(), *(worker(n) for n in range(WORKERS)))
    return answered


def test_sigterm_under_load_stores_every_answered_decision(
    local_stack: LocalStack, trained_artifact: Path, tmp_path: Path
) -> None:
    with (
        migrated_database(local_stack, "shutdown") as database,
        gateway(database, trained_artifact, tmp_path / "gateway.log") as server,
    ):
        terminate = asyncio.Event()
        sent_at: list[float] = []

        async def scenario() -> list[tuple[str, int, float]]:
            loop = asyncio.get_running_loop()
            load = asyncio.create_task(_load(server.url, 500, terminate))
            await terminate.wait()
            sent_at.append(time.monotonic())
            server.process.send_signal(signal.SIGTERM)
            answered = await load
            await loop.run_in_executor(None, server.process.wait, 90)
            return answered

        answered = asyncio.run(scenario())

        assert server.stop(), f"the gateway did not stop cleanly:\n{server.log_tail()}"
        log = server.log.read_text()
        assert "Application shutdown complete" in log, server.log_tail()
        ok = [transaction_id for transaction_id, status, _ in answered if status == 200]
        after_sigterm = [t for _, status, t in answered if status == 200 and t >= sent_at[0]]
        assert len(ok) >= 200, f"only {len(ok)} answers: not much of a load"
        assert {status for _, status, _ in answered} <= {200, 503}, "nothing but answers or 'stopping'"
        stored = {
            row[0]
            for row in stored_rows(
                database,
                "SELECT transaction_id FROM decisions WHERE NOT shadow AND transaction_id = ANY(%s)",
                ok,
            )
        }
        transactions = {
            row[0]
            for row in stored_rows(
                database, "SELECT transaction_id FROM transactions WHERE transaction_id = ANY(%s)", ok
            )
        }
        missing = sorted(set(ok) - stored)
        assert not missing, f"{len(missing)} answered decisions were lost, e.g. {missing[:3]}"
        assert transactions == set(ok)
        assert after_sigterm, "requests in flight when SIGTERM arrived were still answered (and stored)"
