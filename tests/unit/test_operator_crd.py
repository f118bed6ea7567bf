"""The CRD schemas: the committed YAML is what crd.py generates, and defaults have one source."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from fraudops_operator import crd
from fraudops_operator.installed_crds import crd_problems, missing_fields
from fraudops_operator.resources import parse_duration
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize("folder", [crd.MANIFEST_DIR, REPO_ROOT / "charts" / "fraudops-operator" / "crds"])
def test_the_committed_crd_yaml_is_what_crd_py_generates(folder: Path) -> None:
    for file_name, definition in crd.all_crds().items():
        committed = folder / file_name
        assert committed.read_text() == crd.render(definition), f"{committed} is stale: run `make crds`"


def test_an_absent_section_gets_all_its_nested_defaults() -> None:
    spec = crd.apply_defaults(crd.FRAUD_MODEL_SPEC, {"stable": {"version": "v1", "modelUri": "s3://m/v1"}})
    assert spec["rollout"]["strategy"] == "canary"
    assert spec["rollout"]["analysis"]["interval"] == "1m"
    assert spec["stream"]["databaseSecret"] == {"name": "fraudops-db", "key": "url"}


def test_printer_columns_show_phase_versions_weight_and_age() -> None:
    [version] = crd.fraud_model_crd()["spec"]["versions"]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Phase",
        "Stable",
        "Canary",
        "Weight",
        "Age",
    ]
    assert crd.fraud_model_crd()["spec"]["names"]["shortNames"] == ["fm"]
    assert crd.training_run_crd()["spec"]["names"]["shortNames"] == ["tr"]


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("5m", 300), ("1h30m", 5400), ("7d", 604800), ("250ms", 0.25)]
)
def test_durations_read_like_go_durations_plus_days(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_bad_duration_says_what_is_allowed() -> None:
    with pytest.raises(ValueError, match=r"use e\.g\. 90s"):
        parse_duration("5 minutes")


def test_the_installed_crd_check_names_each_missing_field_once_at_its_top() -> None:
    wanted = {"properties": {"spec": {"properties": {"a": {}, "b": {"properties": {"c": {}, "d": {}}}}}}}
    installed = {"properties": {"spec": {"properties": {"a": {}}}}}
    assert missing_fields(wanted, installed) == ["spec.b"]
    assert missing_fields(wanted, {"properties": {"spec": {"properties": {"a": {}, "b": {}}}}}) == [
        "spec.b.c",
        "spec.b.d",
    ]


def test_this_releases_crds_and_newer_ones_pass_the_check_and_absent_ones_do_not() -> None:
    current = {d["metadata"]["name"]: d for d in crd.all_crds().values()}
    assert crd_problems(current) == []
    newer = copy.deepcopy(current)
    for definition in newer.values():
        schema = definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        schema["properties"]["spec"]["properties"]["addedLater"] = {"type": "string"}
    assert crd_problems(newer) == []
    assert crd_problems({**current, "trainingruns.fraudops.io": None}) == [
        "trainingruns.fraudops.io is not installed"
    ]
