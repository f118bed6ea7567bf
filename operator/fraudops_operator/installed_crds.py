"""Before it starts, the operator checks that the API server's CRDs have every field it reads and writes.

Helm installs a chart's `crds/` on the first install and never upgrades them, so after `helm upgrade` the
operator is new and its CRDs may be old. The API server prunes what an old schema does not know: a field
this release added (a TrainingRun's `extraColumns`, a version's `features.forVersion`) would vanish without
a word and the operator would act on what is left. So the operator compares its own schema (crd.py) with
the installed one, field by field, and refuses to start, naming the missing fields and the command that
upgrades the CRDs. A newer CRD (more fields than this operator knows) is fine: what it does not read, it
leaves alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fraudops.errors import ConfigurationError
from fraudops_operator import crd
from fraudops_operator.kube import Kube

UPGRADE_COMMAND = "kubectl apply --server-side --force-conflicts -f charts/fraudops-operator/crds/"


def missing_fields(wanted: Mapping[str, Any], installed: Mapping[str, Any], path: str = "") -> list[str]:
    """Fields of the schema `wanted` that the schema `installed` lacks, as paths (`spec.extraColumns`); a
    missing object is named once, not with each of its fields."""
    missing: list[str] = []
    have = installed.get("properties") or {}
    for name, field in (wanted.get("properties") or {}).items():
        where = f"{path}.{name}" if path else name
        if name in have:
            missing += missing_fields(field, have[name], where)
        else:
            missing.append(where)
    if "items" in wanted:
        missing += missing_fields(wanted["items"], installed.get("items") or {}, f"{path}[]")
    return missing


def _schema(definition: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The openAPIV3Schema of the version this operator serves, or None if the CRD does not serve it."""
    for version in definition["spec"]["versions"]:
        if version["name"] == crd.VERSION:
            return version["schema"]["openAPIV3Schema"]
    return None


def crd_problems(installed: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """What each of this operator's CRDs lacks on the API server (`installed`: CRD name → the object, None
    if absent); empty when every field is there."""
    problems = []
    for definition in crd.all_crds().values():
        name = definition["metadata"]["name"]
        found = installed.get(name)
        schema = _schema(found) if found is not None else None
        if found is None:
            problems.append(f"{name} is not installed")
        elif schema is None:
            problems.append(f"{name} does not serve {crd.VERSION}")
        elif lacking := missing_fields(_schema(definition) or {}, schema):
            problems.append(f"{name} lacks {', '.join(lacking)}")
    return problems


def check_installed_crds(kube: Kube) -> None:
    """Raise ConfigurationError, saying what to run, unless the installed CRDs have every field."""
    names = [d["metadata"]["name"] for d in crd.all_crds().values()]
    problems = crd_problems({name: kube.custom_resource_definition(name) for name in names})
    if problems:
        raise ConfigurationError(
            f"the installed CRDs are older than this operator: {'; '.join(problems)}. The API server drops "
            "the fields a CRD lacks, so the operator does not start. Helm installs a chart's crds/ once and "
            f"never upgrades them: upgrade them from this release's chart ({UPGRADE_COMMAND}, or `helm show "
            "crds <repo>/fraudops-operator --version <version> | kubectl apply --server-side "
            "--force-conflicts -f -`), then restart the operator"
        )
