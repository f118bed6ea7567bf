"""The e2e cluster as the tests drive it: kubectl with the admin kubeconfig (what a user would type)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from hack.cluster.layout import NodeLayout
from tests.waiting import wait_until

T = TypeVar("T")


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

    def wait_for(self, what: str, condition: Callable[[], T], timeout_s: float = 180) -> T:
        """Poll `condition` until true (every half second: each look is a kubectl run) and return what
        it gave; fails with `what` on timeout."""
        return wait_until(condition, timeout_s, what, interval_s=0.5)
