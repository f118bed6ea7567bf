"""Pod discovery for the node's Prometheus: lists the cluster's pods every couple of seconds and writes
them as a Prometheus file_sd target file, with the same ``__meta_kubernetes_pod_*`` labels that
``kubernetes_sd_configs`` (role: pod) would give.

Why: Debian's prometheus 2.42 is built without the Kubernetes service discovery (``field
kubernetes_sd_configs not found in type config.ScrapeConfig``), and Debian's is the Prometheus this
machine can install. With the labels spelled the same, the scrape job's relabelling is the one a
kubernetes_sd job would use, so what Prometheus stores is the same.

    python -m hack.cluster.pod_discovery <API server URL> <PKI folder> <target file> [interval_s]

Standard library only, so it starts in a blink and needs nothing from the virtual environment.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import sys
import time
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def _sanitize(name: str) -> str:
    """A Kubernetes label or annotation name as Prometheus spells it in a meta label."""
    return _INVALID.sub("_", name)


def pod_target_groups(pods: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One file_sd target group per running pod with an IP (pure). Like kubernetes_sd's pod role
    without declared ports, the target is the pod's IP; relabelling adds the port."""
    groups = []
    for pod in pods:
        meta, status = pod["metadata"], pod.get("status", {})
        ip = status.get("podIP")
        if not ip or status.get("phase") != "Running":
            continue
        labels = {
            "__meta_kubernetes_namespace": meta["namespace"],
            "__meta_kubernetes_pod_name": meta["name"],
            "__meta_kubernetes_pod_ip": ip,
            "__meta_kubernetes_pod_phase": status["phase"],
            "__meta_kubernetes_pod_node_name": pod.get("spec", {}).get("nodeName", ""),
        }
        for key, value in (meta.get("labels") or {}).items():
            labels[f"__meta_kubernetes_pod_label_{_sanitize(key)}"] = value
        for key, value in (meta.get("annotations") or {}).items():
            labels[f"__meta_kubernetes_pod_annotation_{_sanitize(key)}"] = value
        groups.append({"targets": [ip], "labels": labels})
    return sorted(groups, key=lambda g: (g["labels"]["__meta_kubernetes_namespace"], g["targets"][0]))


def _write_atomically(path: Path, text: str) -> None:
    # Prometheus watches the file: it must never see half of it.
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    os.replace(partial, path)


def list_pods(api_url: str, context: ssl.SSLContext) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{api_url}/api/v1/pods", context=context, timeout=30) as response:
        items: list[dict[str, Any]] = json.load(response)["items"]
        return items


def main(argv: list[str]) -> int:
    api_url, pki_dir, target_file = argv[0], Path(argv[1]), Path(argv[2])
    interval_s = float(argv[3]) if len(argv) > 3 else 2.0
    context = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
    context.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
    last = None
    while True:
        try:
            pods = list_pods(api_url, context)
        except (OSError, ValueError) as exc:
            # The API server restarting is no reason to stop: keep the last targets and ask again.
            print(
                f"pod-discovery: listing pods failed, keeping the last targets: {exc}",
                file=sys.stderr,
                flush=True,
            )
        else:
            text = json.dumps(pod_target_groups(pods), indent=1)
            if text != last:
                _write_atomically(target_file, text)
                last = text
        time.sleep(interval_s)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
