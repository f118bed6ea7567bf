"""The e2e run's report and artifacts: each step's wall time and numbers (printed at the end of the run and
written to artifacts/e2e/report.json), and what a reader needs after the cluster is gone —
`kubectl get all,fm,tr,isvc,scaledobject -A`, every pod's description and logs (the previous container's
too, when one restarted).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.conftest import REPO_ROOT

if TYPE_CHECKING:
    from tests.e2e.kube import Kube

ARTIFACTS = REPO_ROOT / "artifacts" / "e2e"


@dataclass
class Step:
    name: str
    seconds: float = 0.0
    passed: bool = False
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    """Steps in the order they ran; a step that raised is kept, marked failed, with its time so far."""

    steps: list[Step] = field(default_factory=list)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[dict[str, Any]]:
        current = Step(name)
        self.steps.append(current)
        started = time.monotonic()
        try:
            yield current.numbers
            current.passed = True
        finally:
            current.seconds = round(time.monotonic() - started, 1)
            self.write()

    def write(self, folder: Path = ARTIFACTS) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        rows = [{"step": s.name, "seconds": s.seconds, "passed": s.passed, **s.numbers} for s in self.steps]
        (folder / "report.json").write_text(json.dumps(rows, indent=2, default=str) + "\n")

    def lines(self) -> list[str]:
        out = []
        for s in self.steps:
            numbers = ", ".join(f"{k}={v}" for k, v in s.numbers.items() if not isinstance(v, list | dict))
            mark = "ok  " if s.passed else "FAIL"
            out.append(f"{mark} {s.seconds:7.1f} s  {s.name}" + (f"  ({numbers})" if numbers else ""))
        return out


REPORT = Report()


def collect_artifacts(kube: Kube, folder: Path = ARTIFACTS) -> None:
    """What the cluster looked like at the end: objects, pod descriptions, and logs of every container."""
    folder.mkdir(parents=True, exist_ok=True)
    listing = kube.kubectl("get", "all,fm,tr,isvc,scaledobject,hpa,pvc", "-A", "-o", "wide", check=False)
    (folder / "get-all.txt").write_text(listing.stdout + listing.stderr)
    events = kube.kubectl("get", "events", "-A", "--sort-by=.lastTimestamp", check=False)
    (folder / "events.txt").write_text(events.stdout + events.stderr)
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)
    for pod in kube.get("pods", "-A")["items"]:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        described = kube.kubectl("-n", namespace, "describe", "pod", name, check=False)
        (logs / f"{namespace}_{name}.describe.txt").write_text(described.stdout + described.stderr)
        for status in pod["status"].get("initContainerStatuses", []) + pod["status"].get(
            "containerStatuses", []
        ):
            container = status["name"]
            current = kube.kubectl("-n", namespace, "logs", name, "-c", container, check=False)
            (logs / f"{namespace}_{name}_{container}.log").write_text(current.stdout + current.stderr)
            if status.get("restartCount", 0):
                previous = kube.kubectl(
                    "-n", namespace, "logs", name, "-c", container, "--previous", check=False
                )
                (logs / f"{namespace}_{name}_{container}.previous.log").write_text(
                    previous.stdout + previous.stderr
                )
