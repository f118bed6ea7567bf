"""`make loadtest`: headless Locust against the real gateway and predictor, and the gateway's knee.

Three runs, each with Locust's CSV and HTML reports under loadtest/results/locust/:
1. `gateway`: GatewayUser at a steady rate (mixed full, legacy and 2% invalid payloads; an invalid one
   counts as a failure unless it is answered 422 naming the field);
2. `predictor`: KServe V1 and V2 users against `fraudops serve predictor`;
3. `knee`: the stepped profile of `locust_knee.py`, whose per-step p50/p99 go to `knee.json`.
The gateway runs against a scratch database (dropped afterwards), like the serving benchmark. Locust
runs on the same two cores as the servers and costs about a millisecond of CPU per request, so the
knee is that of the whole machine, generator included (`fraudops bench serving` measures the gateway
with a lighter, open-loop generator).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from fraudops_bench.gateway import gateway_environment, running_gateway, scratch_database, settle_database
from fraudops_bench.predictor import MODEL_NAME, running_predictor
from fraudops_bench.results import RESULTS_DIR, Measurement

LOADTEST_DIR = Path(__file__).resolve().parents[1]
REPORTS_DIR = (RESULTS_DIR / "locust").resolve()  # absolute: locust runs with loadtest/ as its folder


def run_locust(
    name: str,
    locustfile: str,
    host: str,
    classes: list[str],
    env: dict[str, str],
    users: int | None = None,
    seconds: int | None = None,
) -> dict[str, float]:
    """One headless Locust run (CSV + HTML in REPORTS_DIR); the aggregated row of its stats."""
    REPORTS_DIR.mkdir(parents=True, exist_ok=True)
    prefix = REPORTS_DIR / name
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOADTEST_DIR / locustfile),
        "--headless",
        "--host",
        host,
        "--csv",
        str(prefix),
        "--html",
        f"{prefix}.html",
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    if users is not None:
        command += ["--users", str(users), "--spawn-rate", str(users)]
    if seconds is not None:
        command += ["--run-time", f"{seconds}s", "--stop-timeout", "10"]
    result = subprocess.run(
        [*command, *classes],
        env={**env, "PYTHONPATH": str(LOADTEST_DIR)},
        capture_output=True,
        text=True,
        cwd=LOADTEST_DIR,
        check=False,
    )
    stats = prefix.with_name(f"{name}_stats.csv")
    if not stats.exists():
        raise RuntimeError(
            f"locust {name} wrote no report (exit {result.returncode}):\n{result.stderr[-3000:]}"
        )
    with open(stats, newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    total = rows["Aggregated"]
    return {
        "requests": float(total["Request Count"]),
        "failures": float(total["Failure Count"]),
        "requests_per_second": float(total["Requests/s"]),
        "p50_ms": float(total["50%"]),
        "p99_ms": float(total["99%"]),
    }


def loadtest(db_url: str, model_uri: str, seconds: int = 60, knee_step_s: int = 20) -> Measurement:
    """The three Locust runs against a gateway and a predictor started for them."""
    settle_database(db_url)
    with tempfile.TemporaryDirectory() as folder, scratch_database(db_url, "loadtest") as database:
        env = {**gateway_environment(database, model_uri), "MODEL_NAME": MODEL_NAME}
        with running_predictor(model_uri, Path(folder) / "predictor.log") as (predictor_port, _):
            predictor = run_locust(
                "predictor",
                "locustfile.py",
                f"http://127.0.0.1:{predictor_port}",
                ["KServeV1User", "KServeV2User"],
                {**env, "REQUESTS_PER_USER_PER_S": "5"},
                users=4,
                seconds=seconds,
            )
        with running_gateway(env, Path(folder) / "gateway.log") as (port, _):
            host = f"http://127.0.0.1:{port}"
            gateway = run_locust(
                "gateway", "locustfile.py", host, ["GatewayUser"], env, users=20, seconds=seconds
            )
            knee_file = REPORTS_DIR / "knee.json"
            run_locust(
                "knee",
                "locust_knee.py",
                host,
                [],
                {**env, "KNEE_OUTPUT": str(knee_file), "KNEE_STEP_S": str(knee_step_s)},
            )
    knee = json.loads(knee_file.read_text())
    numbers = {
        "gateway_requests_per_second": gateway["requests_per_second"],
        "gateway_p99_ms": gateway["p99_ms"],
        "gateway_failures": gateway["failures"],
        "predictor_requests_per_second": predictor["requests_per_second"],
        "predictor_p99_ms": predictor["p99_ms"],
        "predictor_failures": predictor["failures"],
    }
    # Absent when the profile never crossed the limit (no knee) or crossed it at the first step.
    for name, key in (
        ("knee_offered_per_s", "knee_offered_per_s"),
        ("highest_rate_within_p99_limit_per_s", "highest_rate_within_limit_per_s"),
    ):
        if knee[key] is not None:
            numbers[name] = float(knee[key])
    return Measurement(
        name="locust",
        description="Locust (headless, FastHttpUser) against the gateway /predict (mixed payloads, "
        "2% invalid) and the predictor V1/V2; a stepped profile finds the rate where /predict p99 passes 10 ms",
        numbers=numbers,
        units={
            "gateway_requests_per_second": "req/s",
            "gateway_p99_ms": "ms",
            "gateway_failures": "",
            "predictor_requests_per_second": "req/s",
            "predictor_p99_ms": "ms",
            "predictor_failures": "",
            "knee_offered_per_s": "req/s",
            "highest_rate_within_p99_limit_per_s": "req/s",
        },
        targets={"gateway_failures": "<= 0", "predictor_failures": "<= 0"},
        details={"knee_steps": knee["steps"], "reports": str(REPORTS_DIR), "duration_s": seconds},
    )
