"""Fixtures of the end-to-end suite: the single-node cluster that `make e2e-cluster` started (pods really
run), reached with its admin kubeconfig and the kubectl built with it.

Nothing here starts or skips: without a running cluster every test fails, naming `make e2e-cluster`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from hack.cluster.layout import NodeLayout
from hack.cluster.node import is_up
from tests.e2e import platform as platform_
from tests.e2e.kube import Kube
from tests.e2e.report import REPORT, collect_artifacts


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


@pytest.fixture(scope="session")
def platform(kube: Kube) -> Iterator[Kube]:
    """Both charts installed and the seed model trained (once per run); at the end of the run, the
    cluster's objects, events and every pod's logs under artifacts/e2e."""
    platform_.install(kube)
    yield kube
    collect_artifacts(kube)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT.steps:
        terminalreporter.section("e2e report (artifacts/e2e/report.json)")
        for line in REPORT.lines():
            terminalreporter.write_line(line)
