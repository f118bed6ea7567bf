"""skaffold.yaml checked by skaffold's own binary (built from Go modules): the schema and every profile
(`diagnose --yaml-only`), and what each profile deploys (`render --offline`, which runs Helm)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.packaging

PROFILES = [[], ["kind"], ["dev"], ["kind", "dev"]]


def run(skaffold: Path, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [str(skaffold), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"skaffold {' '.join(args)} failed:\n{proc.stderr}{proc.stdout}"
    return proc.stdout


def profile_args(profiles: list[str]) -> list[str]:
    return [f"--profile={','.join(profiles)}"] if profiles else []


def rendered(skaffold: Path, env: dict[str, str], profiles: list[str]) -> list[dict[str, Any]]:
    text = run(skaffold, env, "render", "--offline", "--digest-source=tag", *profile_args(profiles))
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


@pytest.mark.parametrize("profiles", PROFILES, ids=lambda p: "+".join(p) or "default")
def test_skaffold_accepts_the_config(skaffold: Path, tools_env: dict[str, str], profiles: list[str]) -> None:
    config = run(skaffold, tools_env, "diagnose", "--yaml-only", *profile_args(profiles))
    parsed = yaml.safe_load(config)
    assert parsed["apiVersion"].startswith("skaffold/v4")
    assert [a["image"] for a in parsed["build"]["artifacts"]] == [
        "ghcr.io/fraudops/fraudops",
        "ghcr.io/fraudops/predictor",
        "ghcr.io/fraudops/postgres",
    ]


def test_the_default_profile_deploys_both_charts_with_the_built_platform_image(
    skaffold: Path, tools_env: dict[str, str]
) -> None:
    objects = rendered(skaffold, tools_env, [])
    gateway = find(objects, "Deployment", "fraudops-gateway")
    operator = find(objects, "Deployment", "fraudops-operator")
    for deployment in (gateway, operator):
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "ghcr.io/fraudops/fraudops:0.1.0"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert find(objects, "Kafka", "fraudops")["metadata"]["namespace"] == "fraud"


def test_the_kind_profile_uses_the_kind_values(skaffold: Path, tools_env: dict[str, str]) -> None:
    objects = rendered(skaffold, tools_env, ["kind"])
    service = find(objects, "Service", "fraudops-gateway")
    assert service["spec"]["type"] == "NodePort" and service["spec"]["ports"][0]["nodePort"] == 30800
    assert find(objects, "StatefulSet", "fraudops-postgresql")
    monitor = find(objects, "ServiceMonitor", "fraudops-operator")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_the_dev_profile_makes_synced_sources_writable(skaffold: Path, tools_env: dict[str, str]) -> None:
    objects = rendered(skaffold, tools_env, ["kind", "dev"])
    for name in ("fraudops-gateway", "fraudops-operator"):
        [container] = find(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is False
    config = yaml.safe_load(run(skaffold, tools_env, "diagnose", "--yaml-only", "--profile=dev"))
    platform = config["build"]["artifacts"][0]
    assert platform["docker"]["target"] == "dev"
    assert {rule["strip"] for rule in platform["sync"]["manual"]} >= {"services/gateway/", "operator/"}
