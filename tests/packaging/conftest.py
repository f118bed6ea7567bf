"""Fixtures for the packaging checks: the tools they run, each built or installed by a make target.

Nothing here skips: a missing tool fails the test with the command that provides it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

TOOLS_BIN = REPO_ROOT / ".cache" / "tools" / "bin"
SCANNERS_BIN = REPO_ROOT / ".cache" / "tools" / "scanners" / "bin"


def _need(path: Path, make_target: str) -> Path:
    if not path.is_file():
        pytest.fail(f"{path} not found: run `make {make_target}`", pytrace=False)
    return path


@pytest.fixture(scope="session")
def skaffold() -> Path:
    return _need(TOOLS_BIN / "skaffold", "tools")


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    return _need(TOOLS_BIN / "helm", "tools")


@pytest.fixture(scope="session")
def hadolint() -> Path:
    return _need(SCANNERS_BIN / "hadolint", "scanners")


@pytest.fixture(scope="session")
def checkov() -> Path:
    return _need(SCANNERS_BIN / "checkov", "scanners")


@pytest.fixture(scope="session")
def tools_env(helm_binary: Path) -> dict[str, str]:
    """The environment with our helm first on PATH (skaffold's Helm deployer runs `helm`)."""
    return {
        **os.environ,
        "PATH": f"{helm_binary.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "SKAFFOLD_UPDATE_CHECK": "false",
        "SKAFFOLD_COLLECT_METRICS": "false",
    }
