"""`python -m fraudops_monitoring [FOLDER]`: write every dashboard's JSON (default: the platform chart's
files/dashboards, which it ships as ConfigMaps for the Grafana sidecar)."""

from __future__ import annotations

import sys
from pathlib import Path

from fraudops_monitoring.dashboards import DASHBOARDS
from fraudops_monitoring.grafana import to_json

DEFAULT_FOLDER = Path(__file__).resolve().parents[2] / "charts" / "fraudops" / "files" / "dashboards"


def write_dashboards(folder: Path = DEFAULT_FOLDER) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for uid, build in DASHBOARDS.items():
        path = folder / f"{uid}.json"
        path.write_text(to_json(build()))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_dashboards(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_FOLDER):
        print(path)
