"""third_party/upstream-crds is a verbatim copy of the workplace's ../shared/crds (when that exists)."""

from __future__ import annotations

import pytest

from tests.conftest import REPO_ROOT

SHARED = REPO_ROOT.parent / "shared" / "crds"
VENDORED = REPO_ROOT / "third_party" / "upstream-crds"


def test_the_vendored_upstream_crds_are_complete() -> None:
    for folder in ("kserve", "keda", "strimzi", "prometheus-operator"):
        assert any((VENDORED / folder).glob("*.yaml")), f"{folder} CRDs missing from {VENDORED}"
    assert (VENDORED / "SOURCES.md").exists()


@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/crds next to this clone to compare with")
def test_the_vendored_upstream_crds_equal_the_shared_originals() -> None:
    shared = {p.relative_to(SHARED): p.read_bytes() for p in SHARED.rglob("*") if p.is_file()}
    vendored = {p.relative_to(VENDORED): p.read_bytes() for p in VENDORED.rglob("*") if p.is_file()}
    assert vendored == shared
