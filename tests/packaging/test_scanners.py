"""Static scanners on what we ship: hadolint on every Dockerfile, checkov on every Dockerfile and on every
object rendered from both charts (each scenario). Findings are fixed, or accepted with the reason next to
the line (Dockerfiles) or in charts/.checkov.yaml; anything else fails."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.k8s.charts import CHARTS, scenario_id, scenarios

pytestmark = pytest.mark.packaging

DOCKERFILES = [REPO_ROOT / "Dockerfile", *sorted((REPO_ROOT / "images").glob("*/Dockerfile"))]


def failed_checks(output: str) -> int:
    match = re.search(r"Failed checks: (\d+)", output)
    assert match, f"no checkov summary in:\n{output[-2000:]}"
    return int(match.group(1))


def test_hadolint_finds_nothing_in_the_dockerfiles(hadolint: Path) -> None:
    proc = subprocess.run(
        [str(hadolint), "--failure-threshold", "info", *map(str, DOCKERFILES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_checkov_finds_nothing_unexplained_in_the_dockerfiles(checkov: Path) -> None:
    files = [arg for path in DOCKERFILES for arg in ("--file", str(path))]
    proc = subprocess.run(
        [str(checkov), "--skip-download", "--quiet", "--compact", "--framework", "dockerfile", *files],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )
    assert failed_checks(proc.stdout) == 0, proc.stdout


def test_checkov_finds_nothing_unexplained_in_the_rendered_charts(
    checkov: Path, helm_binary: Path, tmp_path: Path
) -> None:
    for chart, values in scenarios():
        args = [str(helm_binary), "template", "checkov", str(CHARTS / chart), "--namespace", "fraud"]
        rendered = subprocess.run(
            [*args, *(["--values", str(values)] if values else [])],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (tmp_path / f"{scenario_id((chart, values)).replace(':', '-')}.yaml").write_text(rendered)
    proc = subprocess.run(
        [
            str(checkov),
            "--skip-download",
            "--quiet",
            "--compact",
            "--framework",
            "kubernetes",
            "--config-file",
            str(CHARTS / ".checkov.yaml"),
            "--directory",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed_checks(proc.stdout) == 0, proc.stdout
