"""The built-in live dashboard (`fraudops dashboard`) in headless Chromium, fed by a real gateway.

The real gateway decides simulated transactions (fraud patterns included) into real PostgreSQL for
a few time buckets; the dashboard reads those tables, the routing table and the gateway's /metrics;
Chromium loads the page, runs its scripts, and the test reads the rendered DOM: every time chart drew
points, the alerts table lists alerts with their reason codes, the rollout panel shows the variants.
The screenshot is kept under .run/test-artifacts/ (docs/dashboard.png in the README is one of them).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pandas as pd
import pytest
from PIL import Image

from fraudops.schema import TRANSACTION_FIELDS
from tests.conftest import REPO_ROOT
from tests.integration.chromium import rendered_dom, screenshot
from tests.integration.test_gateway_support import (
    Served,
    base_env,
    gateway,
    serving_argv,
    stable_routing_table,
    stored_rows,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
ARTIFACTS = REPO_ROOT / ".run" / "test-artifacts"
BUCKET_S = 5  # the dashboard's time bucket


@pytest.fixture(scope="module")
def routing_table(tmp_path_factory: pytest.TempPathFactory, trained_artifact: Path) -> Path:
    return stable_routing_table(tmp_path_factory.mktemp("routing"), trained_artifact)


@pytest.fixture(scope="module")
def decided(
    database: str,
    trained_artifact: Path,
    routing_table: Path,
    simulated_history: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """A gateway that decided traffic over at least three time buckets, some of it fraud."""
    frame = pd.read_parquet(simulated_history).sort_values("event_time", kind="stable")
    fraud_customers = frame.loc[frame["is_fraud"] == 1, "customer_id"].dropna().unique()[:40]
    chosen = frame[frame["customer_id"].isin(fraud_customers)].head(1500)
    payloads = [
        {k: v for k, v in record.items() if v is not None}
        for record in orjson.loads(
            chosen[[c for c in chosen.columns if c in TRANSACTION_FIELDS]].to_json(
                orient="records", date_format="iso"
            )
        )
    ]
    log = tmp_path_factory.mktemp("gateway") / "gateway.log"
    with gateway(database, trained_artifact, log, routing_table_path=str(routing_table)) as served:
        deadline = time.monotonic() + 120
        spread = False
        for start in range(0, len(payloads), 50):
            response = httpx.post(
                served.url + "/predict/batch", json={"transactions": payloads[start : start + 50]}, timeout=30
            )
            assert response.status_code == 200, response.text
            buckets, alerts = stored_rows(
                database,
                "SELECT count(DISTINCT floor(extract(epoch FROM decided_at) / %s)),"
                " (SELECT count(*) FROM alerts) FROM decisions",
                BUCKET_S,
            )[0]
            spread = buckets >= 3 and alerts >= 3
            if spread or time.monotonic() > deadline:
                break
            # live traffic arrives spread over time: the next batch goes in the dashboard's next bucket
            wait_until(_next_bucket_begun(), BUCKET_S + 5, "the dashboard's next time bucket")
        assert spread, f"decisions in {buckets} time buckets and {alerts} alerts; want 3 and 3"
        yield served


def _next_bucket_begun() -> Callable[[], bool]:
    """A check that turns true once the dashboard's time bucket after the current one has begun."""
    current = int(time.time() // BUCKET_S)
    return lambda: int(time.time() // BUCKET_S) > current


@pytest.fixture(scope="module")
def dashboard(
    decided: Served, database: str, routing_table: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    env = base_env(DB_URL=database, ROUTING_TABLE_PATH=str(routing_table))
    log = tmp_path_factory.mktemp("dashboard") / "dashboard.log"
    argv = ["-m", "fraudops_cli.main", "dashboard", "--metrics-url", decided.url + "/metrics", "--port"]
    with serving_argv(argv, env, log, "/health") as served:
        yield served


def test_the_snapshot_carries_series_alerts_with_reasons_and_the_routing(dashboard: Served) -> None:
    snapshot: dict[str, Any] = httpx.get(dashboard.url + "/api/snapshot", timeout=10).json()
    assert snapshot["problems"] == []
    assert len(snapshot["series"]) >= 3
    assert sum(point["api_per_s"] for point in snapshot["series"]) > 0
    assert all(point["p99_ms"] is not None for point in snapshot["series"])
    assert snapshot["alerts"] and all(alert["reasons"] for alert in snapshot["alerts"])
    assert snapshot["routing"] == [
        {"name": "stable", "model_version": "test-v1", "mode": "serve", "weight": 100.0}
    ]


def test_the_page_renders_non_empty_charts_alerts_and_rollout_in_chromium(dashboard: Served) -> None:
    dom = rendered_dom(dashboard.url + "/")
    assert 'data-rendered="true"' in dom, dom[-2000:]
    for chart in ("chart-throughput", "chart-latency", "chart-fraud"):
        match = re.search(rf'id="{chart}"[^>]*data-points="(\d+)"', dom)
        assert match and int(match.group(1)) >= 3, f"{chart} drew no points"
        svg = dom[dom.index(f'id="{chart}"') :]
        assert 'class="series"' in svg[: svg.index("</svg>")], f"{chart} has no line"
    alerts = dom[dom.index('id="alerts"') :]
    assert "<tbody><tr>" in alerts and 'class="chip"' in alerts, "no alerts with reason codes on the page"
    assert ">stable<" in dom[dom.index('id="rollout"') :]


def test_the_screenshot_shows_a_rendered_page(dashboard: Served) -> None:
    path = screenshot(dashboard.url + "/", ARTIFACTS / "dashboard.png")
    with Image.open(path) as image:
        assert image.size == (1440, 1100)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    # A blank or error page has a handful of colours; charts, text and tables have hundreds.
    assert colours is not None and len(colours) > 200
