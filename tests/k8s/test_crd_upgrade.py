"""Helm never upgrades a chart's `crds/`: an operator newer than the installed CRDs refuses to start (`fraudops
operator run`, as the chart runs it), naming the fields they lack and the command that upgrades them; that
command makes them complete. On an API server of its own, whose CRDs are this release's minus the fields it
added, installed with a plain create as Helm installs them."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client import ApiClient

from fraudops_operator import crd
from fraudops_operator.installed_crds import UPGRADE_COMMAND, check_installed_crds
from fraudops_operator.kube import Kube
from tests.conftest import REPO_ROOT
from tests.k8s.apiserver import LocalKubeApiServer
from tests.k8s.conftest import start_server

pytestmark = pytest.mark.k8s

OPERATOR_COMMAND = [sys.executable, "-m", "fraudops_cli.main", "operator", "run"]


def _spec(definition: dict[str, Any]) -> dict[str, Any]:
    return definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def previous_release_crds() -> str:
    """This release's CRDs without the fields it added (features.forVersion and entityLagEpochs,
    extraColumns) and the rules that read them, as YAML."""
    fraud_model, training_run = copy.deepcopy(crd.fraud_model_crd()), copy.deepcopy(crd.training_run_crd())
    for role in ("stable", "candidate"):
        version = _spec(fraud_model)["properties"][role]
        features = version["properties"]["features"]
        del features["properties"]["forVersion"], version["x-kubernetes-validations"]
        del features["properties"]["entityLagEpochs"]
    rules = _spec(fraud_model)["x-kubernetes-validations"]
    rules[:] = [rule for rule in rules if "entityLagEpochs" not in rule["rule"]]
    del _spec(training_run)["properties"]["extraColumns"]
    return yaml.safe_dump_all([fraud_model, training_run])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKubeApiServer]:
    server = start_server(tmp_path_factory.mktemp("stale-crds-kube"))
    try:
        server.kubectl("create", "-f", "-", input=previous_release_crds())
        yield server
    finally:
        server.stop()


@pytest.fixture()
def stale_server(server: LocalKubeApiServer) -> LocalKubeApiServer:
    """The server with the previous release's CRDs (again: a test may have upgraded them)."""
    server.kubectl("replace", "-f", "-", input=previous_release_crds())
    return server


def test_an_operator_newer_than_the_installed_crds_refuses_to_start_saying_what_they_lack_and_what_to_run(
    stale_server: LocalKubeApiServer,
) -> None:
    proc = subprocess.run(
        OPERATOR_COMMAND,
        env=stale_server.env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,  # an operator that starts runs until stopped
    )

    assert proc.returncode == 1, proc.stderr
    assert "error: the installed CRDs are older than this operator: " in proc.stderr, proc.stderr
    assert (
        "fraudmodels.fraudops.io lacks spec.stable.features.forVersion, spec.stable.features.entityLagEpochs, "
        "spec.candidate.features.forVersion, spec.candidate.features.entityLagEpochs; "
        "trainingruns.fraudops.io lacks spec.extraColumns." in proc.stderr
    ), proc.stderr
    assert UPGRADE_COMMAND in proc.stderr, proc.stderr


def test_the_command_it_names_upgrades_the_crds_to_what_the_operator_needs(
    stale_server: LocalKubeApiServer,
) -> None:
    *command, crds_folder = UPGRADE_COMMAND.split()
    assert command[0] == "kubectl"

    stale_server.kubectl(*command[1:], str(REPO_ROOT / crds_folder))

    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(stale_server.kubeconfig_path), client_configuration=configuration
    )
    check_installed_crds(Kube(ApiClient(configuration)))  # raises while a field is missing
