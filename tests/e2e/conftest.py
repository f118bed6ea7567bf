"""Fixtures of the end-to-end suite: the single-node cluster that `make e2e-cluster` started (pods really
run), reached with its admin kubeconfig and the kubectl built with it.

Nothing here starts or skips: without a running cluster every test fails, naming `make e2e-cluster`.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from hack.cluster.layout import NodeLayout
from hack.cluster.node import is_up


@dataclass(frozen=True)
class Kube:
    """The e2e cluster, driven through kubectl (what a user would type)."""

    layout: NodeLayout

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout_s: float = 120
    ) -> subprocess.CompletedProcess[str]:
        command = [
            str(self.layout.bin_dir / "kubectl"),
            "--kubeconfig",
            str(self.layout.admin_kubeconfig),
            *args,
        ]
        result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=timeout_s)
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed (exit {result.returncode}):\n{result.stderr}{result.stdout}"
            )
        return result

    def apply(self, *objects: dict[str, Any], namespace: str | None = None) -> None:
        ns = ["-n", namespace] if namespace else []
        self.kubectl(
            *ns,
            "apply",
            "--server-side",
            "-f",
            "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}),
        )

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def wait_for(self, what: str, condition: Callable[[], bool], timeout_s: float = 180) -> float:
        """Poll `condition` until true; return the seconds it took. Fails with `what` on timeout."""
        started = time.monotonic()
        while not condition():
            if time.monotonic() - started > timeout_s:
                raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            time.sleep(0.5)
        return time.monotonic() - started


@pytest.fixture(scope="session")
def kube() -> Kube:
    layout = NodeLayout()
    if not is_up(layout):
        pytest.fail(
            "the e2e cluster is not running: start it with `make e2e-cluster` (or run `make e2e`)",
            pytrace=False,
        )
    return Kube(layout)


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    """A fresh namespace under the restricted Pod Security Standard, deleted after the test."""
    name = f"e2e-{secrets.token_hex(3)}"
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
        }
    )
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false")
