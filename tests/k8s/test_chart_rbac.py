"""The operator chart's RBAC is exactly what the operator uses: every call it makes is allowed for its
ServiceAccount (SubjectAccessReview against the real API server with the chart's roles bound), calls it
does not make are denied, and the list of calls is checked against the API server's audit log of a real
reconciliation, so it cannot fall behind the code."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.k8s.charts import render
from tests.k8s.cluster import OPERATOR_AGENTS, Cluster, condition
from tests.k8s.conftest import OperatorRunner
from tests.k8s.objects import STABLE, declared, fraud_model, training_run, volume_claim

pytestmark = pytest.mark.k8s


@dataclass(frozen=True)
class Call:
    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespaced: bool = True

    def __str__(self) -> str:
        where = "in a namespace" if self.namespaced else "cluster-wide"
        sub = f"/{self.subresource}" if self.subresource else ""
        return f"{self.verb} {self.resource}{sub}.{self.group or 'core'} {where}"


def applied(group: str, resource: str) -> list[Call]:
    """Server-side apply: a PATCH, which the API server also authorises as `create` when it creates."""
    return [Call("patch", group, resource), Call("create", group, resource)]


# What the operator calls, from its code paths: Kopf's watch of our resources (list/watch cluster-wide,
# its finalizer patch, Events) and of CRDs; fraudops_operator.kube's get/list/apply/merge_patch/delete/
# replace_status as handlers.py uses them.
OPERATOR_CALLS = [
    Call("list", "fraudops.io", "fraudmodels", namespaced=False),
    Call("watch", "fraudops.io", "fraudmodels", namespaced=False),
    Call("list", "fraudops.io", "trainingruns", namespaced=False),
    Call("watch", "fraudops.io", "trainingruns", namespaced=False),
    Call("list", "apiextensions.k8s.io", "customresourcedefinitions", namespaced=False),
    Call("watch", "apiextensions.k8s.io", "customresourcedefinitions", namespaced=False),
    Call("get", "fraudops.io", "fraudmodels"),
    Call("patch", "fraudops.io", "fraudmodels"),
    Call("update", "fraudops.io", "fraudmodels", "status"),
    Call("get", "fraudops.io", "trainingruns"),
    Call("patch", "fraudops.io", "trainingruns"),
    Call("update", "fraudops.io", "trainingruns", "status"),
    Call("create", "", "events"),
    Call("get", "", "persistentvolumeclaims"),
    Call("list", "", "pods"),
    Call("get", "batch", "jobs"),
    Call("list", "serving.kserve.io", "inferenceservices"),
    Call("delete", "serving.kserve.io", "inferenceservices"),
    Call("list", "keda.sh", "triggerauthentications"),
    Call("delete", "keda.sh", "triggerauthentications"),
    # the entity-state component: its readiness read every tick, retired once no routed version needs it
    Call("get", "apps", "deployments"),
    Call("list", "apps", "deployments"),
    Call("delete", "apps", "deployments"),
    *applied("", "configmaps"),
    *applied("apps", "deployments"),
    *applied("batch", "jobs"),
    *applied("serving.kserve.io", "inferenceservices"),
    *applied("keda.sh", "scaledobjects"),
    *applied("keda.sh", "triggerauthentications"),
    *applied("kafka.strimzi.io", "kafkatopics"),
]

# A sample of what it never does, each of which would widen what a compromised operator could reach.
NOT_OPERATOR_CALLS = [
    Call("list", "", "secrets"),
    Call("get", "", "secrets"),
    Call("delete", "", "pods"),
    Call("create", "", "pods"),
    Call("create", "", "pods", "exec"),
    Call("delete", "fraudops.io", "fraudmodels"),
    Call("update", "apps", "deployments"),
    Call("deletecollection", "apps", "deployments"),
    Call("create", "", "serviceaccounts", "token"),
    Call("create", "rbac.authorization.k8s.io", "rolebindings"),
    Call("create", "rbac.authorization.k8s.io", "clusterrolebindings", namespaced=False),
    Call("patch", "apiextensions.k8s.io", "customresourcedefinitions", namespaced=False),
    Call("delete", "", "namespaces", namespaced=False),
    Call("patch", "", "nodes", namespaced=False),
    Call("list", "", "secrets", namespaced=False),
]


@pytest.fixture()
def operator_account(cluster: Cluster, namespace: str) -> Iterator[str]:
    """The chart's ServiceAccount, ClusterRoles and bindings (defaults: all namespaces), stored for real
    under a release name of this test; returns the ServiceAccount's user name."""
    release = f"rbac{secrets.token_hex(3)}"
    objects = [
        o
        for o in render("fraudops-operator", namespace, release=release)
        if o["kind"] in {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
    ]
    assert {o["kind"] for o in objects} == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
    for obj in objects:
        cluster.apply(
            obj
            if obj["kind"] != "ServiceAccount"
            else {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
        )
    account = next(o for o in objects if o["kind"] == "ServiceAccount")["metadata"]["name"]
    yield f"system:serviceaccount:{namespace}:{account}"
    for obj in objects:
        if obj["kind"] != "ServiceAccount":
            cluster.server.kubectl(
                "delete", obj["kind"].lower(), obj["metadata"]["name"], "--ignore-not-found"
            )


def allowed(cluster: Cluster, user: str, call: Call, namespace: str) -> tuple[bool, str]:
    attributes = {"verb": call.verb, "group": call.group, "resource": call.resource}
    if call.subresource:
        attributes["subresource"] = call.subresource
    if call.namespaced:
        attributes["namespace"] = namespace
    service_account_namespace = user.split(":")[2]
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "resourceAttributes": attributes,
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{service_account_namespace}",
                "system:authenticated",
            ],
        },
    }
    status, body = cluster.server.request(
        "/apis/authorization.k8s.io/v1/subjectaccessreviews", "POST", review
    )
    assert status == 201, body
    verdict = json.loads(body)["status"]
    return bool(verdict.get("allowed")), verdict.get("reason", "")


def test_every_call_the_operator_makes_is_allowed_by_the_chart_role(
    cluster: Cluster, operator_account: str, namespace: str
) -> None:
    denied = [
        str(call) for call in OPERATOR_CALLS if not allowed(cluster, operator_account, call, "fraud")[0]
    ]
    assert denied == []


def test_calls_the_operator_does_not_make_are_denied(cluster: Cluster, operator_account: str) -> None:
    permitted = [
        f"{call} ({reason})"
        for call in NOT_OPERATOR_CALLS
        for ok, reason in [allowed(cluster, operator_account, call, "fraud")]
        if ok
    ]
    assert permitted == []


def test_the_call_list_covers_every_call_in_the_audit_log_of_a_real_reconciliation(
    cluster: Cluster, operator: OperatorRunner, namespace: str
) -> None:
    """The operator reconciles a FraudModel and a TrainingRun (Job created, status written, Events); every
    request it sent, as the API server's audit log recorded it, must be one the list above names."""
    for claim in ("datasets", "models"):
        cluster.apply(volume_claim(namespace, claim))
    # With broker credentials: the TriggerAuthentication is applied too; trained with the entity features:
    # the entity-state component too, whose readiness is read.
    cluster.apply(
        fraud_model(
            namespace,
            stable=declared(STABLE, entityFeatures=True),
            stream={"authentication": {"type": "scram-sha-512", "kafkaUser": "u"}},
        )
    )
    cluster.apply(training_run(namespace, "rbac-run"))
    cluster.wait_for(
        lambda: (
            condition(cluster.get("FraudModel", namespace, "card-fraud"), "Ready").get("status") == "True"
        ),
        "the FraudModel Ready",
    )
    cluster.wait_for(lambda: cluster.get("Job", namespace, "rbac-run-train"), "the training Job")

    made = audited_calls(cluster, namespace)
    listed = {(c.verb, c.group, c.resource, c.subresource, c.namespaced) for c in OPERATOR_CALLS}

    assert {
        ("update", "fraudops.io", "fraudmodels", "status", True),
        ("patch", "batch", "jobs", "", True),
        ("patch", "keda.sh", "triggerauthentications", "", True),
        ("get", "apps", "deployments", "", True),
    } <= made, "the audit log shows no reconciliation"
    assert sorted(made - listed) == []


def audited_calls(cluster: Cluster, namespace: str) -> set[tuple[str, str, str, str, bool]]:
    """(verb, group, resource, subresource, namespaced) of every request the operator (our client or Kopf)
    made in `namespace` or cluster-wide, from the audit log."""
    assert cluster.audit_log is not None
    calls = set()
    for line in cluster.audit_log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if not event.get("userAgent", "").startswith(OPERATOR_AGENTS) or not ref.get("resource"):
            continue
        if ref.get("namespace") not in (None, namespace):
            continue
        calls.add(
            (
                event["verb"],
                ref.get("apiGroup", ""),
                ref["resource"],
                ref.get("subresource", ""),
                bool(ref.get("namespace")),
            )
        )
    return calls
