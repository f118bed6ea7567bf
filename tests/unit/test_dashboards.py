"""The Grafana dashboards: the committed JSON is what the code generates, and every panel queries something."""

from __future__ import annotations

import json

import pytest

from fraudops_monitoring.__main__ import DEFAULT_FOLDER
from fraudops_monitoring.dashboards import DASHBOARDS
from fraudops_monitoring.grafana import panels_of, to_json


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_committed_dashboard_json_equals_the_generated(uid: str) -> None:
    committed = DEFAULT_FOLDER / f"{uid}.json"
    assert committed.exists(), f"{committed} is missing: run `make dashboards`"
    assert committed.read_text() == to_json(DASHBOARDS[uid]()), f"{committed} is stale: run `make dashboards`"


def test_no_other_dashboard_json_is_committed() -> None:
    assert sorted(path.stem for path in DEFAULT_FOLDER.glob("*.json")) == sorted(DASHBOARDS)


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_every_panel_has_a_title_and_prometheus_queries_with_distinct_ids(uid: str) -> None:
    document = json.loads(to_json(DASHBOARDS[uid]()))
    assert document["uid"] == uid
    panels = panels_of(document)
    assert len(panels) >= 5
    for panel in panels:
        assert panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        targets = panel["targets"]
        assert targets and all(target["expr"].strip() for target in targets), panel["title"]
        assert len({target["refId"] for target in targets}) == len(targets), panel["title"]


def test_panels_do_not_overlap_on_the_grid() -> None:
    for uid, build in DASHBOARDS.items():
        taken: set[tuple[int, int]] = set()
        for panel in json.loads(to_json(build()))["panels"]:
            grid = panel["gridPos"]
            cells = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not cells & taken, f"{uid}: {panel['title']} overlaps another panel"
            assert grid["x"] + grid["w"] <= 24
            taken |= cells
