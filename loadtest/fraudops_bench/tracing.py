"""What tracing costs per record: the stream drain and latency and the gateway's p99, with tracing off,
at 1% sampling and at 100%, exporting to a real Jaeger (built by hack/jaeger/build.sh) on loopback.

Each mode runs in a process of its own (`python -m fraudops_bench.tracing MODE`), because a process
configures its tracer provider once from the `OTEL_*` variables: the benchmark's own publisher then
makes the producer spans whose context the consumer continues, as the simulator does in production.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fraudops_bench.results import Measurement
from fraudops_bench.servers import free_port, wait_for_http

REPO_ROOT = Path(__file__).resolve().parents[2]
# What the SDK's BatchSpanProcessor logs when it drops a span because its export queue is full. Its
# logger lets one identical record through per 20 s, so a count is of windows with drops, not of spans.
SPAN_DROP_WARNING = "Queue full, dropping Span"
MODES: dict[str, dict[str, str]] = {
    "off": {},
    "1%": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
    "100%": {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
}


@contextmanager
def running_jaeger(folder: Path) -> Iterator[str]:
    """Jaeger (in memory) on free loopback ports; yields its OTLP/HTTP endpoint."""
    build = subprocess.run(
        ["bash", str(REPO_ROOT / "hack" / "jaeger" / "build.sh")], capture_output=True, text=True, check=False
    )
    if build.returncode != 0:
        raise RuntimeError(f"building Jaeger failed:\n{build.stderr[-3000:]}")
    ports = {
        name: str(free_port())
        for name in (
            "JAEGER_OTLP_HTTP_PORT",
            "JAEGER_QUERY_PORT",
            "JAEGER_QUERY_GRPC_PORT",
            "JAEGER_HEALTH_PORT",
        )
    }
    with open(folder / "jaeger.log", "wb") as log:
        process = subprocess.Popen(
            [
                build.stdout.strip().splitlines()[-1],
                "--config",
                str(REPO_ROOT / "hack" / "jaeger" / "config.yaml"),
            ],
            env=ports,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_http(
            f"http://127.0.0.1:{ports['JAEGER_HEALTH_PORT']}/status", 60, process, folder / "jaeger.log"
        )
        yield f"http://127.0.0.1:{ports['JAEGER_OTLP_HTTP_PORT']}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def overhead(
    model: str,
    drain_transactions: int = 200_000,
    stream_rate: int = 2000,
    gateway_rate: int = 500,
    seconds: int = 60,
) -> Measurement:
    """Every mode in turn (each in its own process, scoring with the artifact at `model`), against one Jaeger."""
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder, running_jaeger(Path(folder)) as endpoint:
        for mode, variables in MODES.items():
            env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
            if variables:
                env.update(variables, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
            output = Path(folder) / "mode.json"
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "fraudops_bench.tracing",
                    mode,
                    str(output),
                    model,
                    str(drain_transactions),
                    str(stream_rate),
                    str(gateway_rate),
                    str(seconds),
                ],
                env=env,
                check=False,
            )
            if run.returncode != 0:
                raise RuntimeError(f"the {mode} run failed (exit {run.returncode})")
            results[mode] = json.loads(output.read_text())
    numbers = {
        f"{name} ({mode})": value for mode, measured in results.items() for name, value in measured.items()
    }
    units = {
        key: (
            "req/s"
            if "requests_per_second" in key
            else "tx/s"
            if "per_second" in key
            else ""
            if "warnings" in key
            else "ms"
        )
        for key in numbers
    }
    return Measurement(
        name="tracing_overhead",
        description="stream drain throughput, stream end-to-end p99, gateway /predict throughput, p99 and "
        "CPU per request with tracing off, sampling 1% and 100% (OTLP/HTTP export to Jaeger on the same "
        "machine)",
        numbers=numbers,
        units=units,
        details={
            "drain_transactions": drain_transactions,
            "stream_rate": stream_rate,
            "gateway_rate": gateway_rate,
            "seconds": seconds,
            "modes": MODES,
        },
    )


def span_drop_warnings(logs: list[Path]) -> int:
    """How many "queue full" warnings the processes writing `logs` logged (missing logs count 0)."""
    return sum(log.read_text(errors="replace").count(SPAN_DROP_WARNING) for log in logs if log.exists())


def _one_mode(
    output: Path, model: str, drain_transactions: int, stream_rate: int, gateway_rate: int, seconds: int
) -> None:
    from fraudops.config import get_settings
    from fraudops.tracing import configure_tracing
    from fraudops_bench import gateway, stream

    configure_tracing("fraudops-bench-publisher")  # the publisher's producer spans, as the simulator makes
    settings = get_settings()
    gateway_log = settings.run_dir / "bench-tracing-gateway.log"
    gateway_log.unlink(missing_ok=True)  # the gateway appends; count only this mode's warnings
    drained = stream.drain(settings, model, drain_transactions, max(drain_transactions // 3, 1000))
    drain_drops = span_drop_warnings([settings.run_dir / "bench-drain-consumer.log"])
    latency = stream.latency(settings, model, stream_rate, seconds)
    latency_drops = span_drop_warnings([settings.run_dir / "bench-latency-consumer.log"])
    served = gateway.predict_latency(settings.db_url, model, gateway_rate, seconds, log=gateway_log)
    output.write_text(
        json.dumps(
            {
                "stream_drain_per_second": drained.numbers["transactions_per_second"],
                "stream_p99_ms": latency.numbers["p99_ms"],
                "gateway_requests_per_second": served.numbers["requests_per_second"],
                "gateway_p99_ms": served.numbers["p99_ms"],
                # What the spans cost the gateway even while it keeps up: CPU per answered request.
                "gateway_cpu_ms_per_request": 10
                * served.details["gateway_cpu_percent_of_one_core"]
                / served.numbers["requests_per_second"],
                # Spans lost on a full export queue (consumer and gateway logs; the publisher's own
                # warnings go to this process's stderr).
                "stream_dropped_span_warnings": drain_drops + latency_drops,
                "gateway_dropped_span_warnings": span_drop_warnings([gateway_log]),
            }
        )
    )


if __name__ == "__main__":
    _one_mode(Path(sys.argv[2]), sys.argv[3], *map(int, sys.argv[4:8]))
