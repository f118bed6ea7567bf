"""The entity-state component's probes: /livez says whether it should be restarted, /readyz whether its
published table has caught up with its input (`fraudops_stream.entity_health`), served on the metrics
port next to /metrics."""

from __future__ import annotations

import httpx

from fraudops_stream import metrics
from fraudops_stream.entity_health import EntityHealth, HealthLimits, epoch_lag, liveness, readiness
from tests.prometheus import free_port
from tests.waiting import wait_until

LIMITS = HealthLimits(outage_limit_s=120, ready_lag_records=5000, ready_lag_epochs=1)


def caught_up(now: float = 0.0) -> EntityHealth:
    health = EntityHealth(LIMITS, last_progress=now)
    health.took_table()
    health.measured(lag_records=10, epoch_lag=0)
    return health


def test_a_component_waiting_for_the_lock_another_instance_holds_stays_alive_but_is_not_ready() -> None:
    health = EntityHealth(LIMITS, last_progress=0.0)
    for now in range(0, 600, 5):  # PostgreSQL answers "held" every few seconds, for ten minutes
        health.waiting("taking the entity table", float(now), answered=True)

    assert liveness(health, 600.0).ok
    verdict = readiness(health, 600.0)
    assert not verdict.ok and "does not hold the entity table" in verdict.reason


def test_an_outage_longer_than_the_limit_fails_the_liveness_probe() -> None:
    health = caught_up(now=0.0)
    health.waiting("publishing the entity table", 1.0, answered=False)  # PostgreSQL gone

    assert liveness(health, 119.0).ok, "within the limit it waits the outage out"
    verdict = liveness(health, 121.0)
    assert not verdict.ok
    assert "121 s" in verdict.reason and "publishing the entity table" in verdict.reason
    assert not readiness(health, 121.0).ok


def test_the_limit_counts_from_the_start_when_postgresql_never_answers() -> None:
    health = EntityHealth(LIMITS, last_progress=0.0)
    health.waiting("connecting to PostgreSQL", 30.0, answered=False)

    assert not liveness(health, 121.0).ok


def test_ready_only_with_the_table_held_and_published_up_to_the_end_of_the_input() -> None:
    health = EntityHealth(LIMITS, last_progress=0.0)
    health.took_table()
    assert not readiness(health, 1.0).ok, "taken, not measured yet (restoring)"

    health.measured(lag_records=250_000, epoch_lag=0)
    assert "250000 records behind" in readiness(health, 1.0).reason

    health.measured(lag_records=0, epoch_lag=40)  # read to the end; the watermark holds 40 epochs back
    assert "40 epochs behind" in readiness(health, 1.0).reason

    health.measured(lag_records=0, epoch_lag=None)
    assert not readiness(health, 1.0).ok, "events read, nothing published"

    health.measured(lag_records=4000, epoch_lag=1)  # a batch in flight, at an epoch's boundary
    assert readiness(health, 1.0).ok


def test_a_lost_session_makes_it_unready_until_it_has_caught_up_again() -> None:
    health = caught_up()
    health.lost_table()
    assert not readiness(health, 1.0).ok
    health.took_table()
    assert not readiness(health, 1.0).ok, "the table restored is not yet measured against the input"


def test_epoch_lag_is_counted_from_the_newest_event_read_to_the_published_epoch() -> None:
    assert epoch_lag(None, None, 60.0) == 0  # nothing read: nothing to publish
    assert epoch_lag(600.0, None, 60.0) is None
    assert epoch_lag(659.9, 10, 60.0) == 0
    assert epoch_lag(660.0, 10, 60.0) == 1
    assert epoch_lag(6000.0, 10, 60.0) == 90


def test_the_probes_answer_on_the_metrics_port_next_to_the_metrics() -> None:
    health = EntityHealth(LIMITS, last_progress=0.0)
    port = free_port()
    metrics.serve(port, {"/livez": lambda: liveness(health, 1.0), "/readyz": lambda: readiness(health, 1.0)})
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(f"{base}/livez"), 10, "the probe server to answer")

    live, ready = httpx.get(f"{base}/livez"), httpx.get(f"{base}/readyz")
    assert (live.status_code, live.text) == (200, "alive\n")
    assert ready.status_code == 503 and "does not hold the entity table" in ready.text
    health.took_table()
    health.measured(lag_records=0, epoch_lag=0)
    assert httpx.get(f"{base}/readyz").status_code == 200
    assert "fraudops_entity_epoch_lag" in httpx.get(f"{base}/metrics").text


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.TransportError:
        return False
    return True
