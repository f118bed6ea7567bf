"""The platform on the e2e node: both charts installed with helm (the images of `make images` imported into
the node's containerd), and what the platform tests ask of it — psql in the bundled PostgreSQL, a
producer Job built from the seed Job's pod (same image, security context and settings), pod restarts.

Kafka is the chart's bundled KRaft broker (no Strimzi operator here: its objects are only checked by the
API server in tests/k8s), PostgreSQL the chart's bundled instance. helm drives the install directly:
skaffold's `kind` profile needs a kind cluster (see the README's Kubernetes section).
"""

from __future__ import annotations

import subprocess
from typing import Any

from hack.cluster import images
from tests.conftest import REPO_ROOT
from tests.e2e.kube import Kube
from tests.e2e.report import REPORT

NAMESPACE = "fraud"
OPERATOR_NAMESPACE = "fraudops-system"
PLATFORM_IMAGES = ("fraudops", "predictor", "kafka", "postgres")
IMAGE_TAG = "0.1.0"
MODEL = "card-fraud"
STABLE_VERSION = "2026-11-01"
STRIMZI_CRDS = REPO_ROOT / "third_party" / "upstream-crds" / "strimzi"


def helm(kube: Kube, *args: str, timeout_s: float = 900) -> None:
    command = [
        str(kube.layout.repo / ".cache" / "tools" / "bin" / "helm"),
        "--kubeconfig",
        str(kube.layout.admin_kubeconfig),
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stderr}{result.stdout}"


def installed(kube: Kube, release: str, namespace: str) -> bool:
    result = kube.kubectl(
        "-n", namespace, "get", "secret", "-l", f"owner=helm,name={release}", "-o", "name", check=False
    )
    return bool(result.stdout.strip())


def install(kube: Kube) -> None:
    """Images imported, the operator chart and the platform chart installed, the seed model trained."""
    with REPORT.step("images imported into the node"):
        images.import_from_docker(
            kube.layout, [f"ghcr.io/fraudops/{name}:{IMAGE_TAG}" for name in PLATFORM_IMAGES]
        )
    with REPORT.step("helm install (operator, platform), seed model trained, every pod Ready"):
        # Strimzi's CRDs without its operator: the FraudModel's KafkaTopic is accepted (a user's Strimzi
        # reconciles it); without them the FraudModel is not Ready and its rollouts hold.
        kube.kubectl("apply", "--server-side", "-f", str(STRIMZI_CRDS))
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": NAMESPACE,
                    "labels": {
                        "pod-security.kubernetes.io/enforce": "restricted",
                        "pod-security.kubernetes.io/enforce-version": "latest",
                    },
                },
            }
        )
        if not installed(kube, "fraudops-operator", OPERATOR_NAMESPACE):
            helm(
                kube,
                "install",
                "fraudops-operator",
                "charts/fraudops-operator",
                "-n",
                OPERATOR_NAMESPACE,
                "--create-namespace",
                "--set",
                "image.pullPolicy=Never",
                "--wait",
                "--timeout",
                "5m",
            )
        if not installed(kube, "fraudops", NAMESPACE):
            helm(
                kube,
                "install",
                "fraudops",
                "charts/fraudops",
                "-n",
                NAMESPACE,
                "-f",
                "tests/e2e/values/fraudops.yaml",
                "--timeout",
                "15m",
            )
        # The migrations and topics Jobs are helm hooks (deleted once they succeed): helm waited for them.
        kube.wait_for(
            "the seed Job to train the first model",
            lambda: bool(kube.get("-n", NAMESPACE, "job", "fraudops-seed")["status"].get("succeeded")),
            timeout_s=900,
        )
        for statefulset in ("fraudops-kafka", "fraudops-postgresql"):
            kube.kubectl(
                "-n",
                NAMESPACE,
                "rollout",
                "status",
                f"statefulset/{statefulset}",
                "--timeout=600s",
                timeout_s=630,
            )


def pods(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kube.get("-n", namespace, "pods")["items"]
    return items


def restarts(pod: dict[str, Any]) -> int:
    return sum(c.get("restartCount", 0) for c in pod["status"].get("containerStatuses", []))


def psql(kube: Kube, query: str) -> str:
    script = 'PGPASSWORD="$POSTGRES_PASSWORD" psql -h /tmp -U "$POSTGRES_USER" -d "$POSTGRES_DB" -tAc "$0"'
    return kube.kubectl(
        "-n", NAMESPACE, "exec", "fraudops-postgresql-0", "--", "sh", "-c", script, query
    ).stdout.strip()


def stored_decisions(kube: Kube) -> tuple[int, int]:
    """(rows, distinct transactions) in the decisions table."""
    total, distinct = psql(kube, "select count(*), count(distinct transaction_id) from decisions").split("|")
    return int(total), int(distinct)


def seed_pod_job(kube: Kube, name: str, command: list[str], *, with_volumes: bool = False) -> dict[str, Any]:
    """A Job running `command` in the seed Job's container (image, env, security context of the chart)."""
    seed = kube.get("-n", NAMESPACE, "job", "fraudops-seed")["spec"]["template"]["spec"]
    container = {
        **seed["containers"][0],
        "name": name,
        "command": command,
        "args": [],
        "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
    }
    container["env"] = [e for e in container.get("env", []) if e["name"] != "FRAUDOPS_SEED"] + [
        {"name": "KAFKA_BOOTSTRAP_SERVERS", "value": "fraudops-kafka-bootstrap:9092"}
    ]
    volumes = seed.get("volumes", [])
    if not with_volumes:
        container["volumeMounts"] = [m for m in container.get("volumeMounts", []) if m["name"] == "tmp"]
        volumes = [v for v in volumes if v["name"] == "tmp"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": seed.get("securityContext", {}),
                    "containers": [container],
                    "volumes": volumes,
                }
            },
        },
    }


def run_job(kube: Kube, job: dict[str, Any], timeout_s: float = 600) -> None:
    """Apply the Job (replacing a finished one of the same name) and wait until it succeeded."""
    name = job["metadata"]["name"]
    kube.kubectl("-n", NAMESPACE, "delete", "job", name, "--ignore-not-found", "--wait=true")
    kube.apply(job)

    def finished() -> bool:
        status = kube.get("-n", NAMESPACE, "job", name)["status"]
        assert not status.get("failed"), f"Job {name} failed: {status}"
        return bool(status.get("succeeded"))

    kube.wait_for(f"the Job {name} to succeed", finished, timeout_s=timeout_s)


def produce(kube: Kube, name: str, *args: str, timeout_s: float = 600) -> None:
    """Simulated transactions into the in-cluster Kafka, from a Job in the cluster."""
    run_job(
        kube,
        seed_pod_job(kube, name, ["fraudops", "simulate", "--kafka", *args]),
        timeout_s=timeout_s,
    )
