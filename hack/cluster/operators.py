"""The third-party controllers the platform needs, installed from their own release's `config/` folders
(read from the Go module cache, rendered with kubectl's kustomize) and run from images built here:

* KServe v0.20.0's controller manager, Standard (raw Deployment) mode. Its webhooks get a serving
  certificate signed by the cluster CA (no cert-manager: that would be three more images and a build
  of ~1,000 modules for what one signed certificate does); the caBundle of every webhook is set to
  that CA. The kube-rbac-proxy sidecar of KServe's default overlay is left out (its image is not
  built here; the metrics port stays on the pod's loopback).
* KEDA v2.20.2: operator, metrics API server (registered through the aggregation layer) and admission
  webhooks; KEDA's operator rotates its own certificates, as upstream, from a valid secret made here
  (see `keda_objects`).

The `*_objects` functions are pure (rendered manifests in, objects to apply out).
"""

from __future__ import annotations

import base64
import copy
import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from hack.cluster import images, node, pki
from hack.cluster.images import ImageFile, ImageSpec
from hack.cluster.layout import NodeLayout
from hack.cluster.timings import Timings

KSERVE_NAMESPACE = "kserve"
KSERVE_VERSION = "v0.20.0"
KSERVE_IMAGE = f"fraudops.local/kserve-controller:{KSERVE_VERSION}"
KSERVE_WEBHOOK_SERVICE = "kserve-webhook-server-service"
KSERVE_WEBHOOK_SECRET = "kserve-webhook-server-cert"
KEDA_NAMESPACE = "keda"
KEDA_VERSION = "v2.20.2"
KEDA_CERTIFICATES_SECRET = "kedaorg-certs"  # cmd/operator: --cert-secret-name's default
KEDA_CA_NAME = "KEDA"  # cmd/operator: the CAName its rotator checks the CA by
KEDA_SERVICES = ("keda-operator", "keda-metrics-apiserver", "keda-admission-webhooks")
# Deployment name -> (binary in .cache/k8s/bin, path in the image, image reference)
KEDA_PARTS = {
    "keda-operator": ("keda-operator", "/keda", f"fraudops.local/keda:{KEDA_VERSION}"),
    "keda-metrics-apiserver": (
        "keda-adapter",
        "/keda-adapter",
        f"fraudops.local/keda-metrics-apiserver:{KEDA_VERSION}",
    ),
    "keda-admission": (
        "keda-webhooks",
        "/keda-admission-webhooks",
        f"fraudops.local/keda-admission-webhooks:{KEDA_VERSION}",
    ),
}
CA_CERTIFICATES = Path("/etc/ssl/certs/ca-certificates.crt")

Obj = dict[str, Any]


# ------------------------------------------------------------------ pure: manifests


def _deployments(objects: Iterable[Obj]) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kserve_config(upstream: Obj) -> Obj:
    """KServe's inferenceservice-config ConfigMap, set for this cluster: Standard mode by default, no
    Ingress (there is no ingress controller; Services are reached in-cluster), and default predictor
    resources that fit a two-core node (upstream asks 1 CPU and 2 GiB for every predictor)."""
    config = copy.deepcopy(upstream)
    data = config["data"]
    deploy = json.loads(data["deploy"])
    deploy["defaultDeploymentMode"] = "Standard"
    ingress = json.loads(data["ingress"])
    ingress["disableIngressCreation"] = True
    inference_service = json.loads(data["inferenceService"])
    inference_service["resource"] = {
        "cpuRequest": "100m",
        "cpuLimit": "1",
        "memoryRequest": "256Mi",
        "memoryLimit": "1Gi",
    }
    data.update(
        {
            "deploy": json.dumps(deploy),
            "ingress": json.dumps(ingress),
            "inferenceService": json.dumps(inference_service),
        }
    )
    for key in [k for k in data if k.startswith("_")]:  # upstream's commented example block
        del data[key]
    return config


def kserve_objects(
    rendered: list[Obj], config: Obj, ca_pem: bytes, serving_cert_pem: bytes, serving_key_pem: bytes
) -> list[Obj]:
    """KServe's default overlay made to run here (see the module docstring)."""
    objects = []
    for original in rendered:
        if original["apiVersion"].startswith("cert-manager.io/"):
            continue  # Certificate / Issuer: replaced by the secret below
        obj = copy.deepcopy(original)
        obj["metadata"].get("annotations", {}).pop("cert-manager.io/inject-ca-from", None)
        if obj["kind"] in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
            for webhook in obj["webhooks"]:
                webhook["clientConfig"]["caBundle"] = _b64(ca_pem)
        if obj["kind"] == "CustomResourceDefinition":
            webhook_conversion = obj["spec"].get("conversion", {}).get("webhook")
            if webhook_conversion:
                webhook_conversion["clientConfig"]["caBundle"] = _b64(ca_pem)
        objects.append(obj)
    manager = _deployments(objects)["kserve-controller-manager"]
    pod = manager["spec"]["template"]["spec"]
    pod["containers"] = [c for c in pod["containers"] if c["name"] == "manager"]
    container = pod["containers"][0]
    container["image"] = KSERVE_IMAGE
    container["imagePullPolicy"] = "Never"
    # Upstream's 100m CPU limit makes the manager's start take minutes on a busy two-core machine.
    container["resources"]["limits"]["cpu"] = "1"
    objects.insert(0, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KSERVE_NAMESPACE}})
    objects.append(config)
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": KSERVE_WEBHOOK_SECRET, "namespace": KSERVE_NAMESPACE},
            "data": {
                "tls.crt": _b64(serving_cert_pem),
                "tls.key": _b64(serving_key_pem),
                "ca.crt": _b64(ca_pem),
            },
        }
    )
    return objects


def keda_objects(rendered: list[Obj], certificates: dict[str, bytes]) -> list[Obj]:
    """KEDA's default overlay with the images built here, and its certificate secret filled in.

    Upstream, the operator finds the secret missing, writes one and exits so that its pod restarts with
    it, while the metrics API server and the webhooks fail until it is there: three restarts on every
    fresh install. Given a valid secret, the operator's rotator keeps it (and still injects its CA into
    the APIService and the webhook configuration, and rotates it before it expires)."""
    objects = copy.deepcopy(rendered)
    objects.insert(  # before the Deployments (same apply)
        0,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": KEDA_CERTIFICATES_SECRET, "namespace": KEDA_NAMESPACE},
            "data": {name: _b64(pem) for name, pem in certificates.items()},
        },
    )
    deployments = _deployments(objects)
    for name, (_binary, _path, image) in KEDA_PARTS.items():
        for container in deployments[name]["spec"]["template"]["spec"]["containers"]:
            container["image"] = image
            container["imagePullPolicy"] = "Never"
    return objects


def controller_images(layout: NodeLayout) -> list[ImageSpec]:
    """One static binary each, with the CA bundle (as in distroless/static), user 65532."""
    ca = ImageFile("/etc/ssl/certs/ca-certificates.crt", CA_CERTIFICATES, mode=0o644)
    specs = [
        ImageSpec(
            KSERVE_IMAGE,
            [ImageFile("/manager", layout.controllers_bin_dir / "kserve-manager"), ca],
            ["/manager"],
        )
    ]
    for binary, path, image in KEDA_PARTS.values():
        specs.append(ImageSpec(image, [ImageFile(path, layout.controllers_bin_dir / binary), ca], [path]))
    return specs


# ------------------------------------------------------------------ edges


def module_dir(layout: NodeLayout, wrapper: str, module: str) -> Path:
    """Where the Go module cache holds `module` at the version the wrapper module pins."""
    result = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", module],
        cwd=layout.repo / "hack" / "cluster" / "controllers" / wrapper,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise RuntimeError(
            f"cannot find {module} in the module cache (run `make e2e-controllers-bin`): "
            f"{result.stderr.strip()}"
        )
    return Path(result.stdout.strip())


def render(layout: NodeLayout, folder: Path) -> list[Obj]:
    result = subprocess.run(
        [str(layout.bin_dir / "kubectl"), "kustomize", str(folder)], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {folder} failed: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def kserve_install_objects(layout: NodeLayout) -> list[Obj]:
    source = module_dir(layout, "kserve", "github.com/kserve/kserve")
    rendered = render(layout, source / "config" / "default")
    configmap = yaml.safe_load((source / "config" / "configmap" / "inferenceservice.yaml").read_text())
    configmap["metadata"]["namespace"] = KSERVE_NAMESPACE
    service = f"{KSERVE_WEBHOOK_SERVICE}.{KSERVE_NAMESPACE}.svc"
    cert, key = pki.serving_certificate(
        layout, "kserve-webhook", (service, f"{service}.{layout.cluster_domain}")
    )
    ca = (layout.pki_dir / "ca.crt").read_bytes()
    return kserve_objects(rendered, kserve_config(configmap), ca, cert, key)


def keda_install_objects(layout: NodeLayout) -> list[Obj]:
    source = module_dir(layout, "keda", "github.com/kedacore/keda/v2")
    # The names KEDA's operator gives its certificate (pkg/certificates: each Service, short to FQDN).
    dns_names = tuple(
        f"{service}{suffix}"
        for service in KEDA_SERVICES
        for suffix in (
            "",
            f".{KEDA_NAMESPACE}",
            f".{KEDA_NAMESPACE}.svc",
            f".{KEDA_NAMESPACE}.svc.{layout.cluster_domain}",
        )
    )
    certificates = pki.certificates_with_own_ca(KEDA_CA_NAME, dns_names)
    return keda_objects(render(layout, source / "config" / "default"), certificates)


# Applied first (later objects need them), and last (nothing may be checked by a webhook before its
# server runs).
_FIRST = ("Namespace", "CustomResourceDefinition")
_LAST = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService")


def apply_in_order(layout: NodeLayout, objects: list[Obj]) -> None:
    """Namespaces and CRDs, then (once the CRDs are established) everything but webhooks and API
    services, then those."""
    first = [o for o in objects if o["kind"] in _FIRST]
    middle = [o for o in objects if o["kind"] not in _FIRST + _LAST]
    last = [o for o in objects if o["kind"] in _LAST]
    _apply(layout, first)
    crds = [o["metadata"]["name"] for o in first if o["kind"] == "CustomResourceDefinition"]
    if crds:
        # Polled, not `kubectl wait`: that fails at once on a CRD whose status has no conditions yet.
        node.wait_until("the CRDs to be established", lambda: _established(layout, crds), 120)
    _apply(layout, middle)
    _apply(layout, last)


def _established(layout: NodeLayout, names: list[str]) -> bool:
    listed = json.loads(node.kubectl(layout, "get", "crd", *names, "-o", "json"))["items"]
    return all(
        any(
            c["type"] == "Established" and c["status"] == "True"
            for c in (crd.get("status") or {}).get("conditions") or []
        )
        for crd in listed
    )


def _apply(layout: NodeLayout, objects: list[Obj]) -> None:
    if objects:
        document = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
        node.kubectl(
            layout, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=document, timeout_s=300
        )


def rollout(layout: NodeLayout, namespace: str, deployments: Iterable[str], timeout_s: int = 600) -> None:
    for name in deployments:
        node.kubectl(
            layout,
            "-n",
            namespace,
            "rollout",
            "status",
            f"deployment/{name}",
            f"--timeout={timeout_s}s",
            timeout_s=timeout_s + 30,
        )


def install(layout: NodeLayout, timings: Timings) -> None:
    """Import the controllers' images, apply KServe then KEDA, and wait until they serve."""
    timings.step("controller images", lambda: images.import_images(layout, controller_images(layout)))
    kserve = kserve_install_objects(layout)
    timings.step(
        "KServe: apply", lambda: apply_in_order(layout, [o for o in kserve if o["kind"] not in _LAST])
    )
    timings.step(
        "KServe: controller ready", lambda: rollout(layout, KSERVE_NAMESPACE, ["kserve-controller-manager"])
    )
    timings.step("KServe: webhooks", lambda: _apply(layout, [o for o in kserve if o["kind"] in _LAST]))
    timings.step("KEDA: apply", lambda: apply_in_order(layout, keda_install_objects(layout)))
    timings.step("KEDA: ready", lambda: rollout(layout, KEDA_NAMESPACE, KEDA_PARTS))
    timings.step(
        "KEDA: external metrics API",
        lambda: node.kubectl(
            layout,
            "wait",
            "--for=condition=Available",
            "--timeout=300s",
            "apiservice/v1beta1.external.metrics.k8s.io",
            timeout_s=330,
        ),
    )
