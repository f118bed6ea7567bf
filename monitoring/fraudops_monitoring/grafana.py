"""Small helpers over the official Grafana Foundation SDK: the panel kinds our dashboards use, each bound
to the dashboard's Prometheus data source variable, and the JSON the Grafana sidecar imports."""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import bargauge, dashboard, heatmap, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# Placeholders Grafana fills in at query time; the live-query test fills them in the same way.
RATE_WINDOW = "$__rate_interval"


def query(expr: str, legend: str = "", *, instant: bool = False) -> prometheus.Dataquery:
    built = prometheus.Dataquery().expr(expr).datasource(DATASOURCE).ref_id("A")
    if legend:
        built = built.legend_format(legend)
    return built.instant() if instant else built.range()


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    """Colour steps: (None, "green") is the base, then (value, colour) from that value up."""
    return (
        dashboard.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=colour) for value, colour in steps])
    )


def time_series(
    title: str, description: str, unit: str, *queries: prometheus.Dataquery, width: int = 12, height: int = 8
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
        .fill_opacity(10)
        .line_width(1)
    )
    for index, built in enumerate(queries):
        panel = panel.with_target(built.ref_id(chr(ord("A") + index)))
    return panel


def single_stat(
    title: str,
    description: str,
    unit: str,
    expr: str,
    *,
    width: int = 6,
    steps: dashboard.ThresholdsConfig | None = None,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .span(width)
        .height(4)
        .with_target(query(expr, instant=True))
    )
    return panel.thresholds(steps) if steps is not None else panel


def bars(
    title: str,
    description: str,
    unit: str,
    expr: str,
    legend: str,
    *,
    width: int = 12,
    steps: dashboard.ThresholdsConfig | None = None,
) -> bargauge.Panel:
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .span(width)
        .height(8)
        .with_target(query(expr, legend, instant=True))
    )
    return panel.thresholds(steps) if steps is not None else panel


def buckets_heatmap(title: str, description: str, expr: str, *, width: int = 12) -> heatmap.Panel:
    """A heatmap of a Prometheus histogram's buckets over time (`expr` yields one series per `le`)."""
    return (
        heatmap.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(width)
        .height(8)
        .with_target(query(expr, "{{le}}").format(PromQueryFormat.HEATMAP))
    )


def instant_table(title: str, description: str, expr: str, *, width: int = 24) -> table.Panel:
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(width)
        .height(8)
        .with_target(query(expr, instant=True).format(PromQueryFormat.TABLE))
    )


def new_dashboard(uid: str, title: str, description: str, tags: list[str]) -> dashboard.Dashboard:
    """A dashboard with the data source picker and a 30-second refresh over the last hour."""
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["fraudops", *tags])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )


def label_variable(name: str, label: str, metric: str) -> dashboard.QueryVariable:
    """A multi-value picker over one label's values, `All` meaning every value (regex `.*`)."""
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(f"label_values({metric}, {name})")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def to_json(built: dashboard.Dashboard) -> str:
    """The dashboard's JSON as Grafana imports it (stable key order, so regenerating changes nothing)."""
    return json.dumps(built.build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def panels_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel of a dashboard document, also those nested in collapsed rows."""
    found = []
    for panel in document.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return [panel for panel in found if panel.get("type") != "row"]
