"""The alert rules: valid for Prometheus, unit-tested with promtool, and every alert has a firing test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

RULES = Path(__file__).resolve().parents[2] / "monitoring" / "rules"
RULES_FILE = RULES.parents[1] / "charts" / "fraudops" / "files" / "rules" / "fraudops.rules.yaml"
TESTS_FILE = RULES / "fraudops.rules.test.yaml"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed: `make prometheus` (hack/prometheus.sh) installs Debian's prometheus"
        )
    return path


def test_the_rules_file_is_valid_for_prometheus(promtool: str) -> None:
    result = subprocess.run([promtool, "check", "rules", str(RULES_FILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_rules_pass(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "test", "rules", TESTS_FILE.name], capture_output=True, text=True, cwd=RULES
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_test_that_sees_it_fire() -> None:
    rules = yaml.safe_load(RULES_FILE.read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    tests = yaml.safe_load(TESTS_FILE.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts == fired
