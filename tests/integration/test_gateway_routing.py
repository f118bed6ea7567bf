"""Variant routing through the real gateway: canary split, sticky A-B, shadow, embedded and remote scoring.

One gateway runs against a routing table file (ROUTING_TABLE_PATH) that each test rewrites, the
way the operator updates its ConfigMap: the gateway picks the new table up while it serves. Remote
variants are scored by the real KServe predictor over the V2 binary protocol.
"""

from __future__ import annotations

import shutil
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fraudops.artifact import load_artifact
from fraudops.features.engine import FeatureEngine
from fraudops.schema import TRANSACTION_FIELDS
from fraudops.scoring import Scorer
from tests.integration.conftest import free_port
from tests.integration.tcp_forward import forward_later
from tests.integration.test_gateway import transactions_of
from tests.integration.test_gateway_support import (
    Served,
    gateway,
    predictor,
    stable_routing_table,
    stored_rows,
    variant,
    wait_for_readiness,
    wait_for_routing,
    wait_until_stored,
    write_routing_table,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def remote(trained_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with predictor(trained_artifact, tmp_path_factory.mktemp("remote") / "predictor.log") as server:
        yield server


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory, trained_artifact: Path) -> Path:
    return stable_routing_table(tmp_path_factory.mktemp("routing"), trained_artifact)


@pytest.fixture(scope="module")
def served(
    database: str, trained_artifact: Path, table_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("gateway") / "gateway.log"
    with gateway(database, trained_artifact, log, routing_table_path=str(table_path)) as server:
        yield server
        assert server.stop(), server.log_tail()


@pytest.fixture()
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=60) as http:
        yield http


@pytest.fixture(scope="module")
def history(simulated_history: Path) -> pd.DataFrame:
    frame = pd.read_parquet(simulated_history).sort_values("event_time", kind="stable")
    return frame[[c for c in frame.columns if c in TRANSACTION_FIELDS]]


def route(served: Served, table_path: Path, variants: list[dict[str, Any]]) -> None:
    """Install a routing table and wait until the gateway serves with it."""
    write_routing_table(table_path, variants)
    wait_for_routing(served.url, ", ".join(f"{v['name']}:{v['mode']}:{v['weight']:g}" for v in variants))


def decide_in_batches(client: httpx.Client, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answers = []
    for start in range(0, len(payloads), 1000):
        response = client.post("/predict/batch", json={"transactions": payloads[start : start + 1000]})
        assert response.status_code == 200, response.text
        answers.extend(response.json()["results"])
    return answers


def legacy_payloads(count: int) -> list[dict[str, Any]]:
    return [
        {
            "amount": 10.0 + i % 500,
            "merchant_category": "grocery",
            "source": "POS",
            "is_international": False,
            "hour_of_day": i % 24,
        }
        for i in range(count)
    ]


def test_a_90_10_canary_routes_within_2_percent_over_10000_transactions(
    client: httpx.Client, served: Served, table_path: Path, trained_artifact: Path, database: str
) -> None:
    route(
        served,
        table_path,
        [variant("stable", trained_artifact, weight=90), variant("canary", trained_artifact, weight=10)],
    )

    answers = decide_in_batches(client, legacy_payloads(10_000))

    shares = Counter(answer["variant"] for answer in answers)
    assert set(shares) == {"stable", "canary"}
    assert 0.08 <= shares["canary"] / len(answers) <= 0.12, shares
    ids = [answer["transaction_id"] for answer in answers]
    wait_until_stored(database, ids, timeout_s=60)
    stored = dict(
        stored_rows(
            database,
            "SELECT variant, count(*) FROM decisions WHERE NOT shadow "
            "AND transaction_id = ANY(%s) GROUP BY variant",
            ids,
        )
    )
    assert stored == dict(shares), "each decision records the variant that made it"


def test_ab_testing_keeps_every_customer_on_one_variant(
    client: httpx.Client, served: Served, table_path: Path, trained_artifact: Path
) -> None:
    route(
        served,
        table_path,
        [
            variant("champion", trained_artifact, weight=50, mode="ab"),
            variant("challenger", trained_artifact, weight=50, mode="ab"),
        ],
    )
    run = uuid.uuid4().hex[:8]
    payloads = [
        {
            "transaction_id": f"ab-{run}-{customer}-{n}",
            "customer_id": f"ab-{run}-{customer}",
            "amount": 20.0 + n,
            "channel": "WEB",
            "event_time": f"2026-10-01T10:{n:02d}:00Z",
        }
        for n in range(5)
        for customer in range(400)
    ]

    answers = decide_in_batches(client, payloads)

    variants_of: dict[str, set[str]] = defaultdict(set)
    for payload, answer in zip(payloads, answers, strict=True):
        variants_of[payload["customer_id"]].add(answer["variant"])
    assert all(len(seen) == 1 for seen in variants_of.values()), "a customer always sees the same variant"
    per_variant = Counter(next(iter(seen)) for seen in variants_of.values())
    assert set(per_variant) == {"champion", "challenger"}
    assert 0.4 <= per_variant["challenger"] / len(variants_of) <= 0.6, per_variant


def test_a_shadow_variant_scored_remotely_never_decides_but_its_scores_are_recorded(
    client: httpx.Client,
    served: Served,
    remote: Served,
    table_path: Path,
    trained_artifact: Path,
    database: str,
) -> None:
    route(
        served,
        table_path,
        [
            variant("stable", trained_artifact),
            variant("challenger", endpoint=remote.url, mode="shadow", weight=0),
        ],
    )
    run = uuid.uuid4().hex[:8]
    payloads = [
        {
            "transaction_id": f"shadow-{run}-{i}",
            "customer_id": f"shadow-{run}-{i % 40}",
            "amount": 5.0 + i,
            "channel": "POS",
            "event_time": f"2026-10-02T11:{i % 60:02d}:00Z",
        }
        for i in range(200)
    ]

    answers = decide_in_batches(client, payloads)
    single = client.post("/predict", json={**payloads[0], "transaction_id": f"shadow-{run}-single"}).json()

    assert {answer["variant"] for answer in answers} == {"stable"} and single["variant"] == "stable"
    ids = [answer["transaction_id"] for answer in answers]
    wait_until_stored(database, ids)
    shadows = dict(
        stored_rows(
            database,
            "SELECT transaction_id, score FROM decisions WHERE shadow "
            "AND variant = 'challenger' AND transaction_id = ANY(%s)",
            ids,
        )
    )
    assert set(shadows) == set(ids), "every transaction has its shadow score"
    deciding = {answer["transaction_id"]: answer["fraud_probability"] for answer in answers}
    # the same model, scored in-process and through KServe V2: the same numbers
    np.testing.assert_allclose([shadows[i] for i in ids], [deciding[i] for i in ids], atol=1e-6)
    stored = client.get(f"/transactions/{ids[0]}").json()
    assert stored["variant"] == "stable"
    assert stored["shadow_scores"] == {"challenger": pytest.approx(deciding[ids[0]], abs=1e-6)}
    alerted = stored_rows(
        database, "SELECT variant, transaction_id FROM alerts WHERE transaction_id = ANY(%s)", ids
    )
    # the module's database is shared with the canary tests, where the challenger decides and alerts
    assert {variant for variant, _ in alerted} <= {"stable"}, "shadows never alert"
    assert alerted, "some of these transactions alert (else the check above proves nothing)"
    assert {tid for _, tid in alerted} == {a["transaction_id"] for a in answers if a["is_fraud"]}


def test_a_variant_scored_remotely_through_kserve_v2_decides_like_the_artifact(
    client: httpx.Client,
    served: Served,
    remote: Served,
    table_path: Path,
    trained_artifact: Path,
    history: pd.DataFrame,
) -> None:
    route(served, table_path, [variant("stable", endpoint=remote.url)])
    payloads = transactions_of(history.iloc[3000:4200], f"remote-{uuid.uuid4().hex[:8]}")
    scorer = Scorer(load_artifact(str(trained_artifact)))
    expected = scorer.score(FeatureEngine().replay(pd.DataFrame(payloads)))
    rows_before = _remote_rows_scored(remote)

    answers = decide_in_batches(client, payloads[:1000]) + [
        client.post("/predict", params={"explain": "true"}, json=payload).json()
        for payload in payloads[1000:]
    ]

    assert {answer["variant"] for answer in answers} == {"stable"}
    np.testing.assert_allclose([a["fraud_probability"] for a in answers], expected, atol=1e-6)
    assert all(a["reasons"] for a in answers[1000:]), "reason codes come back from the remote variant too"
    assert all(a["threshold"] == pytest.approx(scorer.threshold) for a in answers), (
        "its threshold travels too"
    )
    assert _remote_rows_scored(remote) - rows_before >= len(payloads), "the predictor did the scoring"


def _remote_rows_scored(remote: Served) -> float:
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(remote.url + "/metrics").text)}
    return sum(s.value for s in families["fraudops_predictor_decisions"].samples if s.name.endswith("_total"))


def test_a_half_written_artifact_in_the_table_makes_the_gateway_not_ready_until_the_table_is_fixed(
    client: httpx.Client, served: Served, table_path: Path, trained_artifact: Path, tmp_path: Path
) -> None:
    """Loading it raises what the refresh does not expect (here a TypeError from an empty metadata file):
    reported with its traceback and counted, decisions go on with the current table, readiness says
    which task fails, and the next good table is picked up."""
    route(served, table_path, [variant("stable", trained_artifact)])
    half_written = tmp_path / "half-written"
    half_written.mkdir()
    for model_file in trained_artifact.iterdir():
        if model_file.suffix in (".json", ".ubj", ".bst"):
            shutil.copy(model_file, half_written / model_file.name)
    (half_written / "metadata.yaml").write_text("")
    failures_before = _background_failures(served, "routing-refresh")

    write_routing_table(table_path, [variant("stable", half_written)])
    not_ready = wait_for_readiness(client, 503, timeout_s=60)
    decided = client.post("/predict", json=legacy_payloads(1)[0])

    assert not_ready.json()["checks"]["background"] == "failing: routing-refresh"
    assert _background_failures(served, "routing-refresh") > failures_before
    assert "Traceback" in served.log_tail(50_000) and "TypeError" in served.log_tail(50_000)
    assert decided.status_code == 200 and decided.json()["variant"] == "stable", "decisions go on"
    route(served, table_path, [variant("fixed", trained_artifact)])
    assert wait_for_readiness(client, 200, timeout_s=60).json()["checks"]["routing"] == "fixed:serve:100"


def _background_failures(served: Served, task: str) -> float:
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(served.url + "/metrics").text)}
    family = families.get("fraudops_gateway_background_failures")
    return (
        sum(s.value for s in family.samples if s.name.endswith("_total") and s.labels["task"] == task)
        if family
        else 0.0
    )


def test_a_gateway_whose_model_server_answers_later_starts_not_ready_and_then_serves(
    database: str, trained_artifact: Path, remote: Served, tmp_path: Path
) -> None:
    """The operator writes the routing table and creates the InferenceService at once, so in a cluster
    the gateway often starts before its predictor answers. It starts anyway (exiting only gets its pod
    restarted), not ready and answering 503, and serves once the predictor answers."""
    port = free_port()
    table = tmp_path / "routing.yaml"
    write_routing_table(table, [variant("stable", endpoint=f"http://127.0.0.1:{port}")])
    log = tmp_path / "gateway.log"
    with gateway(database, trained_artifact, log, routing_table_path=str(table)) as served:
        not_ready = httpx.get(served.url + "/health/ready", timeout=10)
        early = httpx.post(served.url + "/predict", json=legacy_payloads(1)[0], timeout=30)
        assert not_ready.status_code == 503 and not_ready.json()["checks"]["routing"] == "not loaded"
        assert early.status_code == 503, early.text

        forward_later(port, remote.url.removeprefix("http://"), after_s=0)
        wait_for_routing(served.url, "stable:serve:100", timeout_s=60)
        decided = httpx.post(served.url + "/predict", json=legacy_payloads(1)[0], timeout=30)
        assert decided.status_code == 200 and decided.json()["variant"] == "stable", decided.text
        assert served.stop(), served.log_tail()
