"""The single-node cluster itself: the node is Ready on the versions built here, a Deployment is served
through its Service and found by name through the cluster DNS, a Job runs to completion, `kubectl
logs` and `kubectl exec` reach the pods, and pod traffic cannot leave the node's network namespace.

Every pod here runs under the restricted Pod Security Standard, from the busybox image the node
builds out of Debian's busybox-static.
"""

from __future__ import annotations

import http.server
import json
import secrets
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from hack.cluster.layout import BUSYBOX_IMAGE
from tests.e2e.kube import Kube

pytestmark = pytest.mark.e2e

RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def busybox_container(name: str, script: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": BUSYBOX_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", script],
        "securityContext": RESTRICTED_CONTAINER,
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
    }


def job(name: str, script: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": RESTRICTED_POD,
                    "containers": [busybox_container(name, script)],
                }
            },
        },
    }


def job_succeeded(kube: Kube, namespace: str, name: str) -> bool:
    status = kube.get("-n", namespace, "job", name)["status"]
    if status.get("failed"):
        logs = kube.kubectl("-n", namespace, "logs", f"job/{name}", check=False)
        raise AssertionError(f"job {name} failed:\n{logs.stdout}{logs.stderr}")
    return bool(status.get("succeeded"))


def http_get_by_name_script(fqdn: str, port: int = 80) -> str:
    """A shell script that resolves `fqdn` with busybox's nslookup (its own resolver), prints
    "resolved <address>" and sends GET / there with nc. busybox's wget would crash: Debian's
    busybox-static links glibc statically, which cannot load the NSS modules a name lookup needs."""
    return (
        f"address=$(nslookup -type=a {fqdn} | awk '/^Address: /{{print $2}}' | tail -n 1) && "
        f'echo "resolved $address" && printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 10 "$address" {port}'
    )


@pytest.fixture
def web(kube: Kube, namespace: str) -> str:
    """A Deployment of busybox httpd serving a page with a random token, behind Service `web`."""
    token = secrets.token_hex(8)
    labels = {"app": "web"}
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "page"},
            "data": {"index.html": f"hello from {token}\n"},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "securityContext": RESTRICTED_POD,
                        "containers": [
                            {
                                **busybox_container(
                                    "web", f"echo serving {token}; exec httpd -f -p 8080 -h /www"
                                ),
                                "ports": [{"containerPort": 8080}],
                                "readinessProbe": {
                                    "httpGet": {"path": "/", "port": 8080},
                                    "periodSeconds": 1,
                                },
                                "volumeMounts": [{"name": "page", "mountPath": "/www"}],
                            }
                        ],
                        "volumes": [{"name": "page", "configMap": {"name": "page"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        namespace=namespace,
    )
    kube.kubectl("-n", namespace, "rollout", "status", "deployment/web", "--timeout=180s", timeout_s=200)
    return token


def test_node_is_ready_on_the_versions_built_here(kube: Kube) -> None:
    node = kube.get("node", kube.layout.node_name)
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == "v1.36.3"
    assert info["containerRuntimeVersion"].startswith("containerd://1.6.")
    assert {"type": "InternalIP", "address": kube.layout.node_ip} in node["status"]["addresses"]
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True", ready


def test_a_job_reaches_a_deployment_through_its_service_by_dns_name(
    kube: Kube, namespace: str, web: str
) -> None:
    service_ip = kube.get("-n", namespace, "service", "web")["spec"]["clusterIP"]
    fqdn = f"web.{namespace}.svc.{kube.layout.cluster_domain}."
    kube.apply(job("probe", http_get_by_name_script(fqdn)), namespace=namespace)

    kube.wait_for("the probe Job to complete", lambda: job_succeeded(kube, namespace, "probe"))

    logs = kube.kubectl("-n", namespace, "logs", "job/probe").stdout
    assert f"resolved {service_ip}\n" in logs, (
        f"{fqdn} did not resolve to the Service's IP {service_ip}:\n{logs}"
    )
    assert f"hello from {web}" in logs


def test_kubectl_exec_and_logs_reach_the_pod(kube: Kube, namespace: str, web: str) -> None:
    served = kube.kubectl("-n", namespace, "exec", "deployment/web", "--", "cat", "/www/index.html").stdout
    assert served == f"hello from {web}\n"

    logs = kube.kubectl("-n", namespace, "logs", "deployment/web").stdout
    assert f"serving {web}" in logs


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"reached the host\n")

    def log_message(self, format: str, *args: object) -> None:  # keep pytest's output clean
        return


@pytest.fixture
def host_server(kube: Kube) -> Iterator[tuple[str, int, type[_CountingHandler]]]:
    """An HTTP server on the host's end of the node's veth pair (the only host address pods could try)."""
    handler = type("Handler", (_CountingHandler,), {"hits": 0})
    server = http.server.HTTPServer((kube.layout.host_ip, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield kube.layout.host_ip, server.server_address[1], handler
    server.shutdown()
    server.server_close()


def test_pod_traffic_cannot_reach_the_host(
    kube: Kube, namespace: str, host_server: tuple[str, int, type[_CountingHandler]]
) -> None:
    address, port, handler = host_server
    with urllib.request.urlopen(f"http://{address}:{port}/", timeout=5) as response:  # the host reaches it
        assert response.read() == b"reached the host\n"
    handler.hits = 0
    kube.apply(
        job(
            "escape",
            f'if printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 5 {address} {port}; then echo REACHED; '
            "else echo BLOCKED; fi",
        ),
        namespace=namespace,
    )

    kube.wait_for("the escape Job to complete", lambda: job_succeeded(kube, namespace, "escape"))

    logs = kube.kubectl("-n", namespace, "logs", "job/escape").stdout
    assert "BLOCKED" in logs and "REACHED" not in logs, logs
    assert handler.hits == 0


def test_prometheus_scrapes_pods_that_ask_for_it(kube: Kube) -> None:
    url = f"http://{kube.layout.node_ip}:9090/api/v1/query?query=" + urllib.parse.quote(
        'coredns_build_info{namespace="kube-system",k8s_app="kube-dns"}'
    )

    def coredns_series() -> list[dict[str, Any]]:
        with urllib.request.urlopen(url, timeout=10) as response:
            result: list[dict[str, Any]] = json.load(response)["data"]["result"]
            return result

    kube.wait_for("Prometheus to scrape CoreDNS", lambda: bool(coredns_series()), timeout_s=60)
    series = coredns_series()[0]["metric"]
    assert series["pod"].startswith("coredns-")
    assert series["version"] == "1.15.0"
