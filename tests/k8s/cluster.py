"""Test-side helpers over a LocalKubeApiServer: read objects, apply manifests as a user would, wait, audit.

Reads go straight to the API (stdlib HTTPS, cheap enough to poll); writes go through the built
`kubectl`, the way a platform engineer makes them. The audit log (when the server keeps one) tells how
many writes the operator made, which is how "an unchanged spec costs no write" is measured.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from fraudops_operator.kube import KINDS
from tests.k8s.apiserver import LocalKubeApiServer
from tests.waiting import Running, wait_until

T = TypeVar("T")
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
OPERATOR_AGENTS = ("fraudops-operator", "kopf")


class Cluster:
    def __init__(self, server: LocalKubeApiServer, audit_log: Path | None = None) -> None:
        self.server = server
        self.audit_log = audit_log

    # ------------------------------------------------------------------ reads

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        status, body = self.server.request(KINDS[kind].path(namespace, name))
        if status == 404:
            return None
        assert status == 200, f"GET {kind} {namespace}/{name}: {status} {body[:300]!r}"
        return json.loads(body)

    def must_get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self.get(kind, namespace, name)
        assert obj is not None, f"{kind} {namespace}/{name} does not exist"
        return obj

    def list(self, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        query = "?" + urllib.parse.urlencode({"labelSelector": selector}) if selector else ""
        status, body = self.server.request(KINDS[kind].path(namespace) + query)
        assert status == 200, f"LIST {kind} in {namespace}: {status} {body[:300]!r}"
        return list(json.loads(body)["items"])

    def events(self, namespace: str, involving: str | None = None) -> list[dict[str, Any]]:
        status, body = self.server.request(f"/api/v1/namespaces/{namespace}/events")
        assert status == 200, body
        events = json.loads(body)["items"]
        if involving is not None:
            events = [e for e in events if e["involvedObject"]["name"] == involving]
        # Timestamps have one-second resolution; etcd's revision orders events exactly.
        return sorted(events, key=lambda e: int(e["metadata"]["resourceVersion"]))

    # ------------------------------------------------------------------ writes (as a user)

    def apply(self, manifest: dict[str, Any] | str) -> None:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        self.server.kubectl(
            "apply", "--server-side", "--field-manager=platform-engineer", "-f", "-", input=text
        )

    def try_create(self, manifest: dict[str, Any]) -> str:
        """Create, expecting a refusal: returns kubectl's error output ('' if it was accepted)."""
        proc = self.server.kubectl("create", "-f", "-", input=yaml.safe_dump(manifest), check=False)
        return proc.stderr if proc.returncode != 0 else ""

    def patch(
        self, kind: str, namespace: str, name: str, patch: dict[str, Any], status: bool = False
    ) -> None:
        args = ["patch", _resource(kind), name, "-n", namespace, "--type=merge", "-p", json.dumps(patch)]
        self.server.kubectl(*args, *(["--subresource=status"] if status else []))

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self.server.kubectl("delete", _resource(kind), name, "-n", namespace, "--wait=false")

    def create_namespace(self, name: str) -> None:
        status, body = self.server.request(
            "/api/v1/namespaces",
            "POST",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
        assert status == 201, body

    def delete_namespace(self, name: str) -> None:
        self.server.request(f"/api/v1/namespaces/{name}", "DELETE")

    # ------------------------------------------------------------------ waiting and auditing

    def wait_for(
        self,
        probe: Callable[[], T | None],
        what: str,
        timeout_s: float = 30.0,
        every_s: float = 0.2,
        alive: Iterable[Running] = (),
    ) -> T:
        """Poll `probe` until it returns something truthy; fail with `what` and the last value otherwise
        (at once when a process in `alive` exits)."""
        return wait_until(probe, timeout_s, what, interval_s=every_s, alive=alive)

    def wait_for_phase(
        self, kind: str, namespace: str, name: str, phase: str, timeout_s: float = 30.0
    ) -> dict[str, Any]:
        """The object once its status.phase is `phase`."""

        def in_phase() -> dict[str, Any] | None:
            obj = self.get(kind, namespace, name)
            return obj if ((obj or {}).get("status") or {}).get("phase") == phase else None

        return self.wait_for(in_phase, f"{kind} {name} in phase {phase}", timeout_s)

    def wait_for_reason(
        self,
        kind: str,
        namespace: str,
        name: str,
        type_: str,
        reason: str,
        timeout_s: float = 30.0,
        alive: Iterable[Running] = (),
    ) -> dict[str, Any]:
        """The object once its `type_` condition gives `reason` (e.g. Ready with ImageNotAllowed)."""

        def with_reason() -> dict[str, Any] | None:
            obj = self.get(kind, namespace, name)
            return obj if condition(obj, type_).get("reason") == reason else None

        return self.wait_for(with_reason, f"{kind} {name}: {type_} {reason}", timeout_s, alive=alive)

    def operator_writes(self, namespace: str) -> list[str]:
        """Every write the operator (our client or Kopf's) made in `namespace`, from the audit log."""
        assert self.audit_log is not None, "this server keeps no audit log"
        writes = []
        for line in self.audit_log.read_text().splitlines():
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            if (
                event.get("stage") == "ResponseComplete"
                and event.get("verb") in WRITE_VERBS
                and ref.get("namespace") == namespace
                and event.get("userAgent", "").startswith(OPERATOR_AGENTS)
            ):
                writes.append(
                    f"{event['verb']} {ref.get('resource')}/{ref.get('name')}"
                    + (f"/{ref['subresource']}" if ref.get("subresource") else "")
                )
        return writes


def _resource(kind: str) -> str:
    """kubectl's fully qualified resource name: plural.group (just plural for the core group)."""
    api_version = KINDS[kind].api_version
    return (
        f"{KINDS[kind].plural}.{api_version.rsplit('/', 1)[0]}" if "/" in api_version else KINDS[kind].plural
    )


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    """The condition of that type in an object's status ({} if absent)."""
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), {})


# Reads too (the chart's RBAC test derives the operator's calls from them); metadata only, no bodies.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Metadata", "verbs": sorted(WRITE_VERBS | {"get", "list", "watch"})},
        {"level": "None"},
    ],
}
