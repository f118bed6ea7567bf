"""The rest of the story on the e2e node, after test_platform (the FraudModel `card-fraud` serves its
stable version and its consumer scores the stream), in order:

1. the gateway answers `/predict` through `kubectl port-forward`;
2. a burst of traffic builds consumer lag: KEDA scales the consumer from 1 to 3 replicas (its maximum,
   under the 6 partitions) and back to 1 once the lag drained; every record stored exactly once;
3. a TrainingRun's Job trains on the seed's simulated history, its version becomes the FraudModel's
   candidate, and the canary goes 10 → 30 → 60 → promoted on metrics Prometheus scraped from the pods;
4. a candidate trained on data with 25 times the fraud rate (its scores are far from the stable's)
   rolls back by itself, and the Event says why;
5. deleting the FraudModel removes everything it owned;
6. no pod of the platform or its controllers restarted.

Each step's time and numbers go to the run's report (artifacts/e2e/report.json).
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from fraudops_gateway.schemas import FULL_EXAMPLE
from tests.e2e.kube import Kube
from tests.e2e.platform import (
    MODEL,
    NAMESPACE,
    OPERATOR_NAMESPACE,
    pods,
    produce,
    restarts,
    run_job,
    seed_pod_job,
    stored_decisions,
)
from tests.e2e.report import REPORT

pytestmark = pytest.mark.e2e

CONSUMER = f"{MODEL}-consumer"
BURST_RATE = 600  # messages per second, more than the consumer scores: the lag grows
BURST_SECONDS = 90
MAX_REPLICAS = 3
TRAINING_DATA = "pvc://fraudops-datasets/transactions/2026-11.parquet"
SKEWED_DATA = "transactions/skewed.parquet"
STEADY_RATE = 30  # messages per second while a canary is analysed


class Sampler:
    """Samples `read()` every second on a thread, keeping each change with its time since start."""

    def __init__(self, read: Callable[[], Any]) -> None:
        self.read = read
        self.changes: list[tuple[float, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()

    def elapsed_s(self) -> float:
        return round(time.monotonic() - self._t0, 1)

    def _run(self) -> None:
        while not self._stop.is_set():
            value = self.read()
            if not self.changes or self.changes[-1][1] != value:
                self.changes.append((self.elapsed_s(), value))
            self._stop.wait(1.0)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def consumer_replicas(kube: Kube) -> int:
    status = kube.get("-n", NAMESPACE, "deployment", CONSUMER)["status"]
    return int(status.get("readyReplicas", 0))


def fraud_model(kube: Kube) -> dict[str, Any]:
    found: dict[str, Any] = kube.get("-n", NAMESPACE, "fraudmodel", MODEL)
    return found


def patch_fraud_model(kube: Kube, kind: str, patch: Any) -> None:
    kube.kubectl("-n", NAMESPACE, "patch", "fraudmodel", MODEL, f"--type={kind}", "-p", json.dumps(patch))


def rollout_status(kube: Kube) -> tuple[str, int, str]:
    rollout = fraud_model(kube).get("status", {}).get("rollout", {})
    return rollout.get("phase", ""), int(rollout.get("step", 0)), rollout.get("candidateVersion", "")


def rollout_finished(kube: Kube, version: str) -> bool:
    """The rollout of `version` (not an earlier one) promoted, rolled back or aborted."""
    phase, _, candidate = rollout_status(kube)
    return candidate == version and phase in ("Promoted", "RolledBack", "Aborted")


@pytest.fixture
def port_forward(platform: Kube) -> Iterator[str]:
    """`kubectl port-forward svc/fraudops-gateway :80`: the local base URL, until the test ends."""
    kube = platform
    kube.kubectl(
        "-n", NAMESPACE, "rollout", "status", "deployment/fraudops-gateway", "--timeout=300s", timeout_s=330
    )
    command = [
        str(kube.layout.bin_dir / "kubectl"),
        "--kubeconfig",
        str(kube.layout.admin_kubeconfig),
        "-n",
        NAMESPACE,
        "port-forward",
        "svc/fraudops-gateway",
        ":80",
    ]
    forward = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 8000"
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert match, f"kubectl port-forward said {line!r}; {forward.stderr.read() if forward.stderr else ''}"
        yield f"http://127.0.0.1:{match.group(1)}"
    finally:
        forward.terminate()
        forward.wait(timeout=30)


def test_the_gateway_answers_predict_through_kubectl_port_forward(port_forward: str) -> None:
    with REPORT.step("gateway /predict through kubectl port-forward") as numbers:
        transaction = {
            **FULL_EXAMPLE,
            "transaction_id": f"e2e-{int(time.time() * 1000)}",
            "event_time": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        response = httpx.post(f"{port_forward}/predict", json=transaction, timeout=30)
        assert response.status_code == 200, response.text
        decision = response.json()
        assert decision["transaction_id"] == transaction["transaction_id"]
        assert 0 <= decision["fraud_probability"] <= 1
        assert decision["variant"] == "stable"
        invalid = httpx.post(f"{port_forward}/predict", json={**transaction, "amount": -5}, timeout=30)
        assert invalid.status_code == 422, invalid.text
        numbers.update(model_version=decision["model_version"], latency_ms=decision["prediction_time_ms"])


def test_keda_scales_the_consumer_on_lag_and_back_without_losing_a_record(platform: Kube) -> None:
    kube = platform
    records = BURST_RATE * BURST_SECONDS
    with REPORT.step("KEDA: consumer 1 → 3 on lag and back to 1, every record stored once") as numbers:
        # The 2,000 records of test_platform may have scaled it up already: the HPA takes 5 minutes down.
        kube.wait_for(f"{CONSUMER} to run 1 replica", lambda: consumer_replicas(kube) == 1, timeout_s=900)
        stored_before, _ = stored_decisions(kube)
        with Sampler(lambda: consumer_replicas(kube)) as replicas:
            # A count, not a duration: a producer slower than the rate still sends every record.
            produce(
                kube,
                "burst",
                "--transactions",
                str(records),
                "--rate",
                str(BURST_RATE),
                "--seed",
                "11",
                timeout_s=BURST_SECONDS + 600,
            )
            kube.wait_for(
                f"KEDA to scale {CONSUMER} to {MAX_REPLICAS}",
                lambda: consumer_replicas(kube) >= MAX_REPLICAS,
                timeout_s=600,
            )
            kube.wait_for(
                f"{records} new decisions in PostgreSQL",
                lambda: stored_decisions(kube)[0] - stored_before >= records,
                timeout_s=1200,
            )
            numbers["drained_at_s"] = replicas.elapsed_s()
            # KEDA's cooldown and the HPA's 5-minute scale-down stabilisation
            kube.wait_for(
                f"{CONSUMER} to scale back to 1", lambda: consumer_replicas(kube) == 1, timeout_s=900
            )
        total, distinct = stored_decisions(kube)
        numbers.update(produced=records, stored=total - stored_before, replica_timeline=replicas.changes)
        assert distinct == total, "a transaction was stored twice"
        assert total - stored_before == records
        assert max(value for _, value in replicas.changes) == MAX_REPLICAS


def canary_rollout(max_score_psi: float) -> dict[str, Any]:
    """10 → 30 → 60 with an analysis each, short enough for a test; latency loose for a loaded node."""
    return {
        "strategy": "canary",
        "steps": [{"weight": w, "analysis": True} for w in (10, 30, 60)],
        "analysis": {
            "interval": "20s",
            "window": "1m",
            "minSamples": 50,
            "maxErrorRate": 0.01,
            "maxP99LatencyMs": 2000,
            "maxScorePSI": max_score_psi,
        },
        "promote": False,
        "abort": False,
    }


def training_run(name: str, data_uri: str) -> dict[str, Any]:
    return {
        "apiVersion": "fraudops.io/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "data": {"uri": data_uri, "labelDelay": "7d"},
            "output": {"uri": "pvc://fraudops-models/models"},
            "optuna": {"trials": 2, "timeout": "5m"},
            "resources": {"requests": {"cpu": "200m", "memory": "1Gi"}, "limits": {"memory": "3Gi"}},
            "fraudModelRef": {"name": MODEL},
        },
    }


def train_candidate(kube: Kube, name: str, data_uri: str, numbers: dict[str, Any]) -> None:
    """Apply the TrainingRun and wait until it succeeded and its version is the FraudModel's candidate."""
    started = time.monotonic()
    kube.apply(training_run(name, data_uri))

    def trained() -> bool:
        phase = kube.get("-n", NAMESPACE, "trainingrun", name).get("status", {}).get("phase")
        assert phase != "Failed", kube.kubectl("-n", NAMESPACE, "describe", "trainingrun", name).stdout
        return phase == "Succeeded"

    kube.wait_for(f"the TrainingRun {name} to succeed", trained, timeout_s=900)
    numbers["trained_s"] = round(time.monotonic() - started, 1)
    kube.wait_for(
        f"{name} to be the FraudModel's candidate",
        lambda: fraud_model(kube)["spec"].get("candidate", {}).get("version") == name,
        timeout_s=120,
    )
    metrics = kube.get("-n", NAMESPACE, "trainingrun", name).get("status", {}).get("metrics", {})
    numbers["training_metrics"] = metrics


def steady_traffic(kube: Kube, name: str, seconds: int) -> None:
    """A producer Job sending STEADY_RATE messages a second for `seconds`, not waited for."""
    job = seed_pod_job(
        kube,
        name,
        ["fraudops", "simulate", "--kafka", "--rate", str(STEADY_RATE), "--duration", str(seconds)],
    )
    kube.kubectl("-n", NAMESPACE, "delete", "job", name, "--ignore-not-found", "--wait=true")
    kube.apply(job)


def events(kube: Kube, reason: str) -> list[str]:
    found = kube.get(
        "-n", NAMESPACE, "events", "--field-selector", f"involvedObject.name={MODEL},reason={reason}"
    )
    return [e["message"] for e in found["items"]]


def analysis_condition(kube: Kube) -> str:
    for condition in fraud_model(kube).get("status", {}).get("conditions", []):
        if condition["type"] == "AnalysisPassed":
            return f"{condition['status']}: {condition.get('message', '')}"
    return ""


def test_a_training_run_makes_a_candidate_that_the_canary_promotes(platform: Kube) -> None:
    kube = platform
    version = "2026-12-01"
    with REPORT.step("TrainingRun: Job trains, version becomes the candidate") as numbers:
        patch_fraud_model(kube, "merge", {"spec": {"rollout": canary_rollout(max_score_psi=0.5)}})
        steady_traffic(kube, "steady", 1500)
        train_candidate(kube, version, TRAINING_DATA, numbers)
    with REPORT.step("canary 10 → 30 → 60 → promoted on Prometheus metrics") as numbers:
        with (
            Sampler(lambda: rollout_status(kube)) as timeline,
            Sampler(lambda: analysis_condition(kube)) as verdicts,
        ):
            kube.wait_for(
                "the canary to be promoted", lambda: rollout_finished(kube, version), timeout_s=1200
            )
        numbers.update(rollout_timeline=timeline.changes, analyses=verdicts.changes)
        phase, _, candidate = rollout_status(kube)
        assert (phase, candidate) == ("Promoted", version), f"{phase}: {fraud_model(kube)['status']}"
        steps = [step for _, (_, step, _) in timeline.changes]
        assert steps == sorted(steps), f"the canary went back a step: {timeline.changes}"
        numbers["event"] = (events(kube, "Promoted") or [""])[-1]
        # What the Promoted event asks for: the spec says the candidate is now the stable version.
        stable = {"version": version, "modelUri": f"pvc://fraudops-models/models/{MODEL}/{version}"}
        patch_fraud_model(
            kube,
            "json",
            [
                {"op": "replace", "path": "/spec/stable", "value": stable},
                {"op": "remove", "path": "/spec/candidate"},
            ],
        )
        kube.wait_for("the rollout to settle", lambda: rollout_status(kube)[0] == "Stable", timeout_s=300)


def test_a_candidate_that_scores_far_from_stable_rolls_back_by_itself(platform: Kube) -> None:
    kube = platform
    version = "2026-12-02-skewed"
    with REPORT.step("bad candidate (trained on 25× the fraud rate) trained") as numbers:
        run_job(
            kube,
            seed_pod_job(
                kube,
                "skewed-data",
                [
                    "fraudops",
                    "simulate",
                    "--transactions",
                    "20000",
                    "--fraud-rate",
                    "0.2",
                    "--seed",
                    "3",
                    "--output",
                    f"/datasets/{SKEWED_DATA}",
                ],
                with_volumes=True,
            ),
        )
        train_candidate(kube, version, f"pvc://fraudops-datasets/{SKEWED_DATA}", numbers)
    with REPORT.step("bad candidate rolled back by the analysis, Event says why") as numbers:
        with Sampler(lambda: rollout_status(kube)) as timeline:
            kube.wait_for(
                "the bad candidate to be rolled back", lambda: rollout_finished(kube, version), timeout_s=1200
            )
        numbers["rollout_timeline"] = timeline.changes
        phase, _, candidate = rollout_status(kube)
        assert (phase, candidate) == ("RolledBack", version), f"{phase}: {fraud_model(kube)['status']}"
        why = events(kube, "RolledBack")
        assert why and "analysis failed" in why[-1], why
        numbers["event"] = why[-1]
    kube.kubectl("-n", NAMESPACE, "delete", "job", "steady", "--ignore-not-found")


def test_deleting_the_fraud_model_removes_everything_it_owned(platform: Kube) -> None:
    kube = platform
    with REPORT.step("FraudModel deleted: everything it owned removed") as numbers:
        uid = fraud_model(kube)["metadata"]["uid"]
        kinds = "deployment,service,configmap,secret,scaledobject,inferenceservice"
        owned_before = owned(kube, kinds, uid)
        assert owned_before, "the FraudModel owned nothing"
        kube.kubectl("-n", NAMESPACE, "delete", "fraudmodel", MODEL, "--wait=true", timeout_s=300)
        kube.wait_for(
            "every object the FraudModel owned to go",
            lambda: not owned(kube, kinds, uid) and not model_pods(kube),
            timeout_s=300,
        )
        numbers["removed"] = len(owned_before)


def owned(kube: Kube, kinds: str, uid: str) -> list[str]:
    items = kube.get("-n", NAMESPACE, kinds)["items"]
    return [
        f"{o['kind']}/{o['metadata']['name']}"
        for o in items
        if any(ref["uid"] == uid for ref in o["metadata"].get("ownerReferences", []))
    ]


def model_pods(kube: Kube) -> list[str]:
    """Pods of the model's predictors and consumer (owned through their ReplicaSets), by name."""
    return [
        p["metadata"]["name"] for p in pods(kube, NAMESPACE) if p["metadata"]["name"].startswith(f"{MODEL}-")
    ]


def test_no_pod_restarted(platform: Kube) -> None:
    with REPORT.step("pod restarts (must be 0)") as numbers:
        counted = {
            f"{namespace}/{pod['metadata']['name']}": restarts(pod)
            for namespace in (NAMESPACE, OPERATOR_NAMESPACE, "kserve", "keda", "kube-system")
            for pod in pods(platform, namespace)
        }
        numbers.update(pods=len(counted), restarts=sum(counted.values()))
        assert not any(counted.values()), {name: n for name, n in counted.items() if n}
