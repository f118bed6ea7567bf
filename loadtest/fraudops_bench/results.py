"""Where benchmark numbers go: one JSON file per benchmark and a markdown table of all of them."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

RESULTS_DIR = Path(os.environ.get("FRAUDOPS_BENCH_DIR", "loadtest/results"))


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return {
        "cpu": cpu,
        "cores": psutil.cpu_count(logical=True),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "commit": commit.stdout.strip() or "unknown",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


@dataclass
class Measurement:
    """One benchmark's result: headline numbers (with units), the bar they must clear, and details."""

    name: str
    description: str
    numbers: dict[str, float]
    units: dict[str, str]
    targets: dict[str, str] = field(default_factory=dict)  # number name -> e.g. ">= 50000"
    details: dict[str, Any] = field(default_factory=dict)

    def passed(self) -> dict[str, bool]:
        verdicts = {}
        for key, rule in self.targets.items():
            operator, limit = rule.split()
            value = self.numbers[key]
            verdicts[key] = value >= float(limit) if operator == ">=" else value <= float(limit)
        return verdicts


def save(measurement: Measurement) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{measurement.name}.json"
    document = {**measurement.__dict__, "passed": measurement.passed(), "machine": machine()}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    write_table()
    return path


def write_table() -> Path:
    """BENCH.md: every saved benchmark in one table (what the README quotes)."""
    rows = []
    machines = set()
    for path in sorted(RESULTS_DIR.glob("*.json")):
        document = json.loads(path.read_text())
        machine_line = (
            f"{document['machine']['cpu']}, {document['machine']['cores']} cores, "
            f"{document['machine']['memory_gib']} GiB"
        )
        machines.add(machine_line)
        for key, value in document["numbers"].items():
            target = document["targets"].get(key, "")
            verdict = {True: "✅", False: "❌"}.get(document["passed"].get(key), "")
            unit = document["units"].get(key, "")
            shown = f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
            rows.append(
                f"| {document['name']} | {key} | {shown} {unit} | {target} {verdict} | "
                f"{document['machine']['measured_at'][:16].replace('T', ' ')} | {document['machine']['cpu']} |"
            )
    header = [
        "# Benchmarks",
        "",
        "Written by `make bench`; each row comes from `loadtest/results/<name>.json`.",
        "",
        *(f"Machine: {m}" for m in sorted(machines)),
        "",
        "| benchmark | number | value | target | measured (UTC) | CPU |",
        "|---|---|---:|---|---|---|",
    ]
    path = RESULTS_DIR / "BENCH.md"
    path.write_text("\n".join(header + rows) + "\n")
    return path
