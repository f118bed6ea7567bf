"""Both Helm charts and every manifest against the real API server: helm lint, every object rendered from
the default and the ci/ values accepted by server-side dry-run (schemas of our CRDs and of the vendored
Strimzi, KEDA, KServe and Prometheus Operator CRDs, admission) in namespaces that enforce the restricted
Pod Security Standard, the values schema refusing wrong values, and a real `helm install`."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.k8s.apiserver import LocalKubeApiServer
from tests.k8s.charts import (
    CHARTS,
    RESTRICTED,
    WORKLOAD_KINDS,
    dry_run,
    helm,
    pod_from_template,
    render,
    scenario_id,
    scenarios,
)
from tests.k8s.cluster import Cluster

pytestmark = pytest.mark.k8s

SCENARIOS = scenarios()


def make_restricted_namespace(cluster: Cluster, name: str) -> None:
    """Label a namespace so that the API server refuses pods that do not meet the restricted standard."""
    cluster.server.kubectl(
        "label", "namespace", name, "--overwrite", *(f"{k}={v}" for k, v in RESTRICTED.items())
    )


@pytest.fixture()
def restricted(cluster: Cluster, namespace: str) -> str:
    make_restricted_namespace(cluster, namespace)
    return namespace


@pytest.fixture()
def other_namespaces(cluster: Cluster) -> Iterator[Callable[[str], None]]:
    """Creates the restricted namespaces a chart names (e.g. watchNamespaces); deletes them afterwards and
    waits until they are gone, so that later tests may use the same names."""
    created: list[str] = []

    def create(name: str) -> None:
        if cluster.server.request(f"/api/v1/namespaces/{name}")[0] == 404:
            cluster.create_namespace(name)
            created.append(name)
        make_restricted_namespace(cluster, name)

    yield create
    for name in created:
        cluster.delete_namespace(name)
    for name in created:
        cluster.wait_for(
            lambda n=name: cluster.server.request(f"/api/v1/namespaces/{n}")[0] == 404,
            f"namespace {name} deleted",
            timeout_s=120,
        )


def namespaces_named_by(objects: list[dict[str, Any]], release_namespace: str) -> set[str]:
    return {o["metadata"]["namespace"] for o in objects if o["metadata"].get("namespace")} - {
        release_namespace
    }


def accepted(kube: LocalKubeApiServer, obj: dict[str, Any], namespace: str) -> str:
    """'' when the API server accepts `obj` with no warning, else what it said."""
    proc = dry_run(kube, obj, namespace)
    what = f"{obj['kind']} {obj['metadata']['name']}"
    if proc.returncode != 0:
        return f"{what} refused: {proc.stderr.strip()}"
    if "Warning" in proc.stderr:
        return f"{what} accepted with a warning: {proc.stderr.strip()}"
    return ""


@pytest.mark.parametrize("scenario", SCENARIOS, ids=scenario_id)
def test_helm_lint_passes(scenario: tuple[str, Path | None]) -> None:
    chart, values = scenario
    args = ["lint", "--strict", str(CHARTS / chart)] + (["--values", str(values)] if values else [])
    assert "0 chart(s) failed" in helm(*args).stdout


@pytest.mark.parametrize("scenario", SCENARIOS, ids=scenario_id)
def test_every_rendered_object_and_its_pods_are_accepted_under_the_restricted_standard(
    cluster: Cluster,
    restricted: str,
    other_namespaces: Callable[[str], None],
    scenario: tuple[str, Path | None],
) -> None:
    chart, values = scenario
    objects = render(chart, restricted, values, include_crds=True)
    for other in namespaces_named_by(objects, restricted):  # e.g. the operator's watchNamespaces
        other_namespaces(other)
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    for crd in crds:  # stored for real: the objects of their kinds (Kopf's peering) need them served
        cluster.apply(crd)

    problems = [
        accepted(cluster.server, o, restricted) for o in objects if o["kind"] != "CustomResourceDefinition"
    ]
    workloads = [o for o in objects if o["kind"] in WORKLOAD_KINDS]
    problems += [
        accepted(cluster.server, pod_from_template(w), w["metadata"].get("namespace", restricted))
        for w in workloads
    ]

    assert workloads, f"{scenario_id(scenario)} renders no workload"
    assert [p for p in problems if p] == []


def test_the_restricted_namespace_refuses_a_pod_that_breaks_the_standard(
    cluster: Cluster, restricted: str
) -> None:
    """The control for the test above: the same namespace refuses a gateway pod running as root."""
    [gateway] = [o for o in render("fraudops", restricted) if o["kind"] == "Deployment"]
    pod = pod_from_template(gateway)
    pod["spec"]["securityContext"] = {"runAsUser": 0}

    verdict = accepted(cluster.server, pod, restricted)

    assert 'violates PodSecurity "restricted:latest"' in verdict and "runAsNonRoot" in verdict


def test_every_manifest_is_accepted_by_the_api_server(cluster: Cluster, restricted: str) -> None:
    samples = [
        doc
        for path in sorted((REPO_ROOT / "manifests" / "samples").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    for sample in samples:  # into the test's own namespace (the samples say `fraud`, which other tests use)
        sample["metadata"]["namespace"] = restricted
    crds = [
        doc
        for path in sorted((REPO_ROOT / "manifests" / "crds").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]

    problems = [
        accepted(cluster.server, o, o["metadata"].get("namespace", "default")) for o in crds + samples
    ]

    assert {s["kind"] for s in samples} == {"FraudModel", "TrainingRun"}
    assert [p for p in problems if p] == []


def test_the_kind_cluster_maps_the_gateway_node_port_of_the_kind_values() -> None:
    """manifests/kind/cluster.yaml is kind's own config (not an API object): its port mapping must be the
    gateway's node port in the kind values, or localhost:8000 reaches nothing."""
    kind_config = yaml.safe_load((REPO_ROOT / "manifests" / "kind" / "cluster.yaml").read_text())
    kind_values = yaml.safe_load((CHARTS / "fraudops" / "ci" / "kind-values.yaml").read_text())
    mapped = {
        m["containerPort"]: m["hostPort"]
        for node in kind_config["nodes"]
        for m in node.get("extraPortMappings", [])
    }
    assert mapped[kind_values["gateway"]["service"]["nodePort"]] == 8000


@pytest.mark.parametrize(
    ("chart", "setting", "field", "complaint"),
    [
        ("fraudops", "gateway.replicas=two", "/gateway/replicas", "got string, want integer"),
        (
            "fraudops",
            "kafka.topics.transactions.partitions=six",
            "/kafka/topics/transactions/partitions",
            "got string, want integer",
        ),
        ("fraudops", "gateway.replica=2", "/gateway", "additional properties 'replica' not allowed"),
        ("fraudops", "gateway.entityTable=yes", "/gateway/entityTable", "got string, want boolean"),
        ("fraudops-operator", "tickSeconds=fast", "/tickSeconds", "got string, want number"),
        ("fraudops-operator", "image.pullPolicy=Sometimes", "/image/pullPolicy", "value must be one of"),
    ],
)
def test_helm_install_refuses_a_wrong_value_naming_the_field(
    kube: LocalKubeApiServer, namespace: str, chart: str, setting: str, field: str, complaint: str
) -> None:
    proc = helm(
        "install",
        f"bad-{secrets.token_hex(3)}",
        str(CHARTS / chart),
        "--namespace",
        namespace,
        "--set",
        setting,
        kube=kube,
        check=False,
    )

    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert f"at '{field}'" in proc.stderr and complaint in proc.stderr


@pytest.fixture()
def release(kube: LocalKubeApiServer, restricted: str) -> Iterator[str]:
    name = f"t{secrets.token_hex(3)}"
    yield name
    helm("uninstall", name, "--namespace", restricted, kube=kube, check=False)


@pytest.mark.parametrize("chart", ["fraudops-operator", "fraudops"])
def test_helm_installs_each_chart_with_its_defaults(
    kube: LocalKubeApiServer, cluster: Cluster, restricted: str, release: str, chart: str
) -> None:
    # --no-hooks: the migration Job would never finish here (no kubelet runs pods).
    helm("install", release, str(CHARTS / chart), "--namespace", restricted, "--no-hooks", kube=kube)

    status = helm("status", release, "--namespace", restricted, "-o", "json", kube=kube).stdout
    assert '"status":"deployed"' in status.replace(" ", "")
    deployments = cluster.server.kubectl("get", "deployments", "-n", restricted, "-o", "name").stdout.split()
    assert deployments == [
        f"deployment.apps/{release}-{chart}"
        if chart == "fraudops-operator"
        else f"deployment.apps/{release}-fraudops-gateway"
    ]


def test_the_pods_the_operator_creates_meet_the_restricted_standard(
    cluster: Cluster, restricted: str
) -> None:
    """The consumer, the entity-state component, the predictor and the training pods (from the operator's
    own desired objects) are accepted in a namespace that enforces the restricted standard, as the charts'
    pods are."""
    from datetime import UTC, datetime

    from fraudops_operator import crd
    from fraudops_operator.desired import desired_children
    from fraudops_operator.resources import FraudModel, TrainingRun
    from fraudops_operator.rollout import next_state
    from fraudops_operator.training import desired_training_job
    from tests.k8s.objects import CANDIDATE, STABLE, declared

    def body(kind: str, spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": crd.API_VERSION,
            "kind": kind,
            "spec": crd.apply_defaults(schema, spec),
            "metadata": {"name": "card-fraud", "namespace": restricted, "uid": "u1", "generation": 1},
        }

    entity_stable = declared(STABLE, entityFeatures=True)
    model = FraudModel.from_body(
        body("FraudModel", {"stable": entity_stable, "candidate": CANDIDATE}, crd.FRAUD_MODEL_SPEC)
    )
    children = desired_children(model, next_state(model, None, datetime.now(UTC)).state)
    run = TrainingRun.from_body(
        body(
            "TrainingRun",
            {"data": {"uri": "pvc://datasets/x.parquet"}, "output": {"uri": "pvc://models/a"}},
            crd.TRAINING_RUN_SPEC,
        )
    )
    pods = [pod_from_template(c) for c in children if c["kind"] == "Deployment"]
    pods.append(pod_from_template(desired_training_job(run)))
    for isvc in (c for c in children if c["kind"] == "InferenceService"):
        predictor = isvc["spec"]["predictor"]
        pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": isvc["metadata"]["name"]},
                "spec": {k: predictor[k] for k in ("containers", "securityContext", "volumes")},
            }
        )

    assert {"card-fraud-consumer-pod", "card-fraud-entity-state-pod"} <= {p["metadata"]["name"] for p in pods}
    assert len(pods) >= 4, [p["metadata"]["name"] for p in pods]
    assert [problem for pod in pods if (problem := accepted(cluster.server, pod, restricted))] == []
