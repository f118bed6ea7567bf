"""A stepped Locust profile that finds the gateway's knee: the request rate at which p99 passes 10 ms.

    locust -f loadtest/locust_knee.py --headless --host http://127.0.0.1:8000

The offered rate climbs in steps (KNEE_STEPS, requests/s, default 50 to 1,000); each step lasts
KNEE_STEP_S seconds (default 20), of which the first KNEE_SETTLE_S (5) are not counted. Every
`/predict` response is filed under the step it was sent in, so each step gets its own p50/p99 and
achieved rate, and KNEE_OUTPUT (a JSON path) receives them with the knee. Users are the gateway
users of `locustfile.py` (mixed full, legacy and invalid payloads), each at REQUESTS_PER_USER_PER_S.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from locust import LoadTestShape, events
from locustfile import RATE, GatewayUser

__all__ = ["GatewayUser", "SteppedRate"]

STEPS = [
    float(rate) for rate in os.environ.get("KNEE_STEPS", "50,100,200,300,400,500,600,800,1000").split(",")
]
STEP_S = float(os.environ.get("KNEE_STEP_S", "20"))
SETTLE_S = float(os.environ.get("KNEE_SETTLE_S", "5"))
P99_LIMIT_MS = float(os.environ.get("KNEE_P99_LIMIT_MS", "10"))
OUTPUT = os.environ.get("KNEE_OUTPUT", "")


class SteppedRate(LoadTestShape):
    """Offered rate steps up every STEP_S seconds; the run stops after the last step."""

    def tick(self) -> tuple[int, float] | None:
        if not _START["at"]:  # the first tick starts the clock (it comes before the first request)
            _START["at"] = time.monotonic()
        step = current_step()
        if step is None:
            return None
        users = max(1, math.ceil(STEPS[step] / RATE))
        return users, float(users)  # all of a step's users start at once


_START = {"at": 0.0}
_LATENCIES_MS: dict[int, list[float]] = {}
_COUNTED: dict[int, int] = {}
_FAILURES: dict[int, int] = {}


def current_step() -> int | None:
    elapsed = time.monotonic() - _START["at"]
    step = int(elapsed // STEP_S)
    return step if step < len(STEPS) else None


@events.request.add_listener
def _file_under_step(name: str, response_time: float, exception: Any, **_: Any) -> None:
    if not _START["at"]:
        return
    elapsed = time.monotonic() - _START["at"]
    step = int(elapsed // STEP_S)
    if step >= len(STEPS) or elapsed - step * STEP_S < SETTLE_S:
        return
    _COUNTED[step] = _COUNTED.get(step, 0) + 1
    if exception is not None:
        _FAILURES[step] = _FAILURES.get(step, 0) + 1
    elif name == "/predict (full)":  # the latency that matters: a real transaction, answered
        _LATENCIES_MS.setdefault(step, []).append(response_time)


def knee_summary() -> dict[str, Any]:
    """Each step's offered and achieved rate and latency, and the first step whose p99 passed the limit."""
    steps = []
    for index, offered in enumerate(STEPS):
        latencies = np.asarray(_LATENCIES_MS.get(index, []))
        if not len(latencies):
            continue
        steps.append(
            {
                "offered_per_s": offered,
                "achieved_per_s": round(_COUNTED.get(index, 0) / (STEP_S - SETTLE_S), 1),
                "p50_ms": round(float(np.percentile(latencies, 50)), 2),
                "p99_ms": round(float(np.percentile(latencies, 99)), 2),
                "failures": _FAILURES.get(index, 0),
            }
        )
    knee_index = next((i for i, step in enumerate(steps) if step["p99_ms"] > P99_LIMIT_MS), len(steps))
    knee = steps[knee_index] if knee_index < len(steps) else None
    within = steps[:knee_index]
    return {
        "p99_limit_ms": P99_LIMIT_MS,
        "step_s": STEP_S,
        "settle_s": SETTLE_S,
        "steps": steps,
        "knee_offered_per_s": None if knee is None else knee["offered_per_s"],
        "knee_achieved_per_s": None if knee is None else knee["achieved_per_s"],
        "highest_rate_within_limit_per_s": max((s["achieved_per_s"] for s in within), default=None),
    }


@events.quitting.add_listener
def _write_summary(**_: Any) -> None:
    if OUTPUT:
        Path(OUTPUT).write_text(json.dumps(knee_summary(), indent=2) + "\n")
