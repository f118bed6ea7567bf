"""The controllers the platform builds on, running in the cluster from images built here: KServe turns
an InferenceService into a serving predictor (through its admission webhooks), and KEDA scales a
Deployment on an external metric that the HPA reads through the aggregation layer from KEDA's metrics
API server.

`make e2e` installs them (`make e2e-controllers`) before this runs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.kube import Kube
from tests.e2e.test_cluster import (
    RESTRICTED_POD,
    busybox_container,
    http_get_by_name_script,
    job,
    job_succeeded,
)

pytestmark = pytest.mark.e2e


def httpd_serving(config_map: str, port: int = 8080) -> dict[str, Any]:
    """A restricted pod spec whose busybox httpd serves the ConfigMap's files."""
    return {
        "securityContext": RESTRICTED_POD,
        "containers": [
            {
                **busybox_container("kserve-container", f"exec httpd -f -p {port} -h /www"),
                "ports": [{"containerPort": port, "protocol": "TCP"}],
                "volumeMounts": [{"name": "www", "mountPath": "/www"}],
            }
        ],
        "volumes": [{"name": "www", "configMap": {"name": config_map}}],
    }


def condition_true(obj: dict[str, Any], kind: str) -> bool:
    return any(
        c["type"] == kind and c["status"] == "True" for c in obj.get("status", {}).get("conditions", [])
    )


def test_kserve_turns_an_inference_service_into_a_serving_predictor(kube: Kube, namespace: str) -> None:
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "model"},
            "data": {"index.html": "predictor up\n"},
        },
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "probe", "annotations": {"serving.kserve.io/deploymentMode": "Standard"}},
            "spec": {"predictor": {"minReplicas": 1, **httpd_serving("model")}},
        },
        namespace=namespace,
    )

    kube.wait_for(
        "the InferenceService to be Ready",
        lambda: condition_true(kube.get("-n", namespace, "isvc", "probe"), "Ready"),
        timeout_s=240,
    )

    deployment = kube.get("-n", namespace, "deployment", "probe-predictor")
    assert deployment["metadata"]["ownerReferences"][0]["kind"] == "InferenceService"
    url = f"probe-predictor.{namespace}.svc.{kube.layout.cluster_domain}."
    kube.apply(job("ask", http_get_by_name_script(url)), namespace=namespace)
    kube.wait_for("the Job to reach the predictor", lambda: job_succeeded(kube, namespace, "ask"))
    assert "predictor up" in kube.kubectl("-n", namespace, "logs", "job/ask").stdout


def test_keda_scales_a_deployment_on_an_external_metric(kube: Kube, namespace: str) -> None:
    api = kube.get("apiservice", "v1beta1.external.metrics.k8s.io")
    assert condition_true(api, "Available"), api["status"]
    labels = {"app": "metric"}
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "metric"},
            "data": {"value.json": json.dumps({"value": 30})},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "metric"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": httpd_serving("metric")},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "metric"},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "worker"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "worker"}},
                "template": {
                    "metadata": {"labels": {"app": "worker"}},
                    "spec": {
                        "securityContext": RESTRICTED_POD,
                        "containers": [busybox_container("worker", "exec sleep 3600")],
                    },
                },
            },
        },
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": "worker"},
            "spec": {
                "scaleTargetRef": {"name": "worker"},
                "minReplicaCount": 1,
                "maxReplicaCount": 4,
                "pollingInterval": 5,
                "advanced": {
                    "horizontalPodAutoscalerConfig": {
                        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}
                    }
                },
                "triggers": [
                    {
                        "type": "metrics-api",
                        "metadata": {
                            "url": f"http://metric.{namespace}.svc.{kube.layout.cluster_domain}/value.json",
                            "valueLocation": "value",
                            "targetValue": "10",
                        },
                    }
                ],
            },
        },
        namespace=namespace,
    )
    kube.kubectl("-n", namespace, "rollout", "status", "deployment/metric", "--timeout=120s", timeout_s=150)

    def replicas() -> int:
        return int(kube.get("-n", namespace, "deployment", "worker")["spec"].get("replicas", 0))

    kube.wait_for("KEDA to scale the worker to 3 (30 / target 10)", lambda: replicas() == 3, timeout_s=240)
    hpa = kube.get("-n", namespace, "hpa", "keda-hpa-worker")
    assert hpa["spec"]["metrics"][0]["type"] == "External"

    kube.kubectl(
        "-n",
        namespace,
        "patch",
        "configmap",
        "metric",
        "--type=merge",
        "-p",
        json.dumps({"data": {"value.json": json.dumps({"value": 5})}}),
    )
    kube.wait_for("KEDA to scale the worker back to 1", lambda: replicas() == 1, timeout_s=300)


def test_kserve_and_keda_started_without_a_restart(kube: Kube) -> None:
    """Upstream KEDA's operator writes its certificate secret on first start and exits so that its pod
    restarts, and the other KEDA pods fail until the secret is there; here the secret is made valid
    before they start (hack/cluster/operators.py), so nothing restarts."""
    for namespace in ("kserve", "keda"):
        for pod in kube.get("-n", namespace, "pods")["items"]:
            restarts = {c["name"]: c.get("restartCount", 0) for c in pod["status"]["containerStatuses"]}
            assert not any(restarts.values()), f"{namespace}/{pod['metadata']['name']} restarted: {restarts}"
