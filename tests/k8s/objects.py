"""Manifests the tests apply, written as a platform engineer would (short, defaults left to the schema)."""

from __future__ import annotations

from typing import Any

STABLE = {"version": "2026-11-01", "modelUri": "s3://models/card-fraud/2026-11-01"}
CANDIDATE = {"version": "2026-11-28", "modelUri": "s3://models/card-fraud/2026-11-28"}


def fraud_model(namespace: str, name: str = "card-fraud", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "fraudops.io/v1alpha1",
        "kind": "FraudModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"stable": STABLE, **spec},
    }


def declared(version: dict[str, Any], **features: Any) -> dict[str, Any]:
    """`version` with what its model was trained with, declared for it (features.forVersion)."""
    return {**version, "features": {"forVersion": version["version"], **features}}


def fast_analysis(prometheus_url: str, **limits: Any) -> dict[str, Any]:
    """Analysis settings for tests: seconds instead of minutes, against the test Prometheus."""
    return {"interval": "2s", "window": "10s", "minSamples": 20, "prometheusUrl": prometheus_url, **limits}


def training_run(namespace: str, name: str, fraud_model_name: str | None = "card-fraud") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "data": {"uri": "pvc://datasets/transactions/2026-11.parquet"},
        "output": {"uri": "pvc://models/artifacts"},
        "optuna": {"trials": 5, "timeout": "2m"},
    }
    if fraud_model_name:
        spec["fraudModelRef"] = {"name": fraud_model_name}
    return {
        "apiVersion": "fraudops.io/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def volume_claim(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
