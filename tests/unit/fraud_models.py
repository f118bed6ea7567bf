"""FraudModels for the operator's pure parts, as the API server stores them (the schema's defaults
filled in), with the stable and candidate versions the cluster tests use too."""

from __future__ import annotations

from typing import Any

from fraudops_operator import crd
from fraudops_operator.resources import FraudModel
from tests.k8s.objects import CANDIDATE, STABLE

__all__ = ["CANDIDATE", "STABLE", "fraud_model_body", "stored_fraud_model"]


def stored_fraud_model(spec: dict[str, Any], generation: int = 1) -> FraudModel:
    """FraudModel `card-fraud` in namespace `fraud` with `spec`, defaulted as the API server stores it."""
    return FraudModel.from_body(fraud_model_body(crd.apply_defaults(crd.FRAUD_MODEL_SPEC, spec), generation))


def fraud_model_body(spec: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    """The object `card-fraud` in namespace `fraud` with `spec` exactly as given (no defaults added)."""
    return {
        "apiVersion": crd.API_VERSION,
        "kind": "FraudModel",
        "metadata": {"name": "card-fraud", "namespace": "fraud", "uid": "u1", "generation": generation},
        "spec": spec,
    }
