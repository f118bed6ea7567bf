"""The few Kubernetes API calls the handlers make: get, list, server-side apply, delete, replace status.

Objects are plain dicts (what `desired` builds); the REST path comes from a small table of the kinds the
operator touches, so there is no discovery round-trip on the hot path. A kind the API server does not
serve (its CRD is not installed) raises `KindNotServedError`, which the handlers turn into a condition.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

FIELD_MANAGER = "fraudops-operator"
USER_AGENT = "fraudops-operator/0.1"


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    installed_by: str  # what provides it, for the message when it is missing

    @property
    def crd_name(self) -> str:
        group = self.api_version.rsplit("/", 1)[0] if "/" in self.api_version else "core"
        return f"{self.plural}.{group}"

    def path(self, namespace: str, name: str | None = None) -> str:
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{prefix}/namespaces/{namespace}/{self.plural}" + (f"/{name}" if name else "")


KINDS = {
    k.kind: k
    for k in (
        Kind("v1", "ConfigMap", "configmaps", "Kubernetes"),
        Kind("v1", "Pod", "pods", "Kubernetes"),
        Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims", "Kubernetes"),
        Kind("apps/v1", "Deployment", "deployments", "Kubernetes"),
        Kind("batch/v1", "Job", "jobs", "Kubernetes"),
        Kind("serving.kserve.io/v1beta1", "InferenceService", "inferenceservices", "KServe 0.20"),
        Kind("keda.sh/v1alpha1", "ScaledObject", "scaledobjects", "KEDA 2.x"),
        Kind("keda.sh/v1alpha1", "TriggerAuthentication", "triggerauthentications", "KEDA 2.x"),
        Kind("kafka.strimzi.io/v1", "KafkaTopic", "kafkatopics", "Strimzi 1.x"),
        Kind("fraudops.io/v1alpha1", "FraudModel", "fraudmodels", "the fraudops chart"),
        Kind("fraudops.io/v1alpha1", "TrainingRun", "trainingruns", "the fraudops chart"),
    )
}


def load_configuration() -> kubernetes.client.Configuration:
    """In a pod: the service account; elsewhere: the current context of $KUBECONFIG (or ~/.kube/config)."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except kubernetes.config.ConfigException:
        # Read $KUBECONFIG now: the client library's default was fixed when it was imported.
        kubernetes.config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG") or None, client_configuration=configuration
        )
    return configuration


class KindNotServedError(Exception):
    def __init__(self, kind: Kind) -> None:
        super().__init__(
            f"{kind.api_version} {kind.kind} is not served: the CRD {kind.crd_name} is not "
            f"installed (install {kind.installed_by})"
        )
        self.kind = kind


class ConflictError(Exception):
    """The object changed since it was read (optimistic concurrency): read again and retry."""


class Kube:
    def __init__(self, api_client: ApiClient) -> None:
        self.api = api_client

    @classmethod
    def from_environment(cls) -> Kube:
        client = ApiClient(load_configuration())
        client.user_agent = USER_AGENT
        return cls(client)

    # ------------------------------------------------------------------ calls

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", KINDS[kind].path(namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                self._raise_if_not_served(KINDS[kind])
                return None
            raise

    def list_objects(
        self, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        query = [("labelSelector", label_selector)] if label_selector else []
        try:
            return self._call("GET", KINDS[kind].path(namespace), query=query).get("items", [])
        except ApiException as exc:
            if exc.status == 404:
                self._raise_if_not_served(KINDS[kind])
                return []
            raise

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply under our field manager (force: we own these objects' fields)."""
        kind = KINDS[obj["kind"]]
        path = kind.path(obj["metadata"]["namespace"], obj["metadata"]["name"])
        try:
            return self._call(
                "PATCH",
                path,
                body=obj,
                content_type="application/apply-patch+yaml",
                query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            )
        except ApiException as exc:
            if exc.status == 404:
                self._raise_if_not_served(kind)
            raise

    def merge_patch(self, kind: str, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return self._call(
            "PATCH",
            KINDS[kind].path(namespace, name),
            body=patch,
            content_type="application/merge-patch+json",
            query=[("fieldManager", FIELD_MANAGER)],
        )

    def delete(self, kind: str, namespace: str, name: str) -> None:
        try:
            self._call("DELETE", KINDS[kind].path(namespace, name), body={"propagationPolicy": "Background"})
        except ApiException as exc:
            if exc.status != 404:
                raise

    def replace_status(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """PUT the status subresource; the object's resourceVersion makes it fail if it changed meanwhile."""
        path = KINDS[obj["kind"]].path(obj["metadata"]["namespace"], obj["metadata"]["name"]) + "/status"
        try:
            return self._call("PUT", path, body=obj, query=[("fieldManager", FIELD_MANAGER)])
        except ApiException as exc:
            if exc.status == 409:
                raise ConflictError(
                    f"{obj['kind']} {obj['metadata']['name']} changed while reconciling"
                ) from exc
            raise

    def custom_resource_definition(self, name: str) -> dict[str, Any] | None:
        """The CRD `name`, or None. Listed by name: the operator may list CRDs (Kopf watches them), not get."""
        found = self._call(
            "GET",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            query=[("fieldSelector", f"metadata.name={name}")],
        ).get("items", [])
        return found[0] if found else None

    def served(self, kind: Kind) -> bool:
        try:
            resources = self._call(
                "GET", "/api/v1" if kind.api_version == "v1" else f"/apis/{kind.api_version}"
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return any(r.get("name") == kind.plural for r in resources.get("resources", []))

    # ------------------------------------------------------------------ internals

    def _raise_if_not_served(self, kind: Kind) -> None:
        if not self.served(kind):
            raise KindNotServedError(kind)

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        request = self.api.param_serialize(
            method,
            path,
            query_params=query or [],
            body=body,
            auth_settings=["BearerToken"],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
        )
        response = self.api.call_api(*request, _request_timeout=30)
        data = response.read()
        if not 200 <= response.status <= 299:
            self.api.response_deserialize(response, {})  # raises ApiException with the server's message
        return json.loads(data) if data else {}
