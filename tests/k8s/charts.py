"""Helm, run the way a platform engineer runs it, for the chart tests: render, install, and what came out.

helm is built from Go modules by hack/tools/build.sh (`make tools`); a missing binary fails the test with
that instruction. Rendered objects go to the real API server of the k8s tests with server-side dry-run.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.k8s.apiserver import LocalKubeApiServer

CHARTS = REPO_ROOT / "charts"
TOOLS_BIN = REPO_ROOT / ".cache" / "tools" / "bin"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"}
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
}


def tool(name: str) -> Path:
    path = TOOLS_BIN / name
    if not path.is_file():
        pytest.fail(
            f"{path} not found: build it with `make tools` (hack/tools/build.sh, from Go modules)",
            pytrace=False,
        )
    return path


def helm(
    *args: str, kube: LocalKubeApiServer | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    command = [str(tool("helm")), *args]
    if kube is not None:
        command.append(f"--kubeconfig={kube.kubeconfig_path}")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"helm {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr}{proc.stdout}"
        )
    return proc


def render(
    chart: str,
    namespace: str,
    values: Path | None = None,
    *,
    include_crds: bool = False,
    release: str = "fraudops",
) -> list[dict[str, Any]]:
    """`helm template` of one chart, as objects (hooks included: they are objects too)."""
    args = ["template", release, str(CHARTS / chart), "--namespace", namespace]
    if values is not None:
        args += ["--values", str(values)]
    if include_crds:
        args.append("--include-crds")
    return [doc for doc in yaml.safe_load_all(helm(*args).stdout) if doc]


def scenarios() -> list[tuple[str, Path | None]]:
    """(chart, values file): each chart's defaults and every file in its ci/ folder."""
    found: list[tuple[str, Path | None]] = []
    for chart in sorted(p.name for p in CHARTS.iterdir() if (p / "Chart.yaml").is_file()):
        found.append((chart, None))
        found += [(chart, values) for values in sorted((CHARTS / chart / "ci").glob("*.yaml"))]
    return found


def scenario_id(scenario: tuple[str, Path | None]) -> str:
    chart, values = scenario
    return f"{chart}:{values.stem if values else 'defaults'}"


def pod_from_template(workload: dict[str, Any]) -> dict[str, Any]:
    """The Pod a controller would create from a workload's template: what PodSecurity admission enforces
    (it only warns on templates)."""
    spec = workload["spec"]
    template = copy.deepcopy(
        spec["jobTemplate"]["spec"]["template"] if workload["kind"] == "CronJob" else spec["template"]
    )
    metadata = template.get("metadata") or {}
    name = f"{workload['metadata']['name']}-pod"[:63]
    for claim in spec.get("volumeClaimTemplates", []):  # what the StatefulSet controller adds to pod 0
        claim_name = f"{claim['metadata']['name']}-{workload['metadata']['name']}-0"
        template["spec"].setdefault("volumes", []).append(
            {"name": claim["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim_name}}
        )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": metadata.get("labels", {})},
        "spec": template["spec"],
    }


def dry_run(
    kube: LocalKubeApiServer, obj: dict[str, Any], namespace: str | None
) -> subprocess.CompletedProcess[str]:
    """Server-side apply with server-side dry-run: admission, schema and PodSecurity run, nothing is stored."""
    args = ["apply", "--server-side", "--dry-run=server", "--field-manager=helm", "-f", "-"]
    if namespace is not None and "namespace" not in obj.get("metadata", {}):
        args += ["--namespace", namespace]
    return kube.kubectl(*args, input=yaml.safe_dump(obj), check=False)
