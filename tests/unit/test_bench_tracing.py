"""The tracing benchmark finds the SDK's warnings about spans dropped on a full export queue in the logs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from fraudops_bench.tracing import span_drop_warnings


class _StuckExporter(SpanExporter):
    """Holds the processor's worker in export until released, so the queue fills up."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(timeout=10)
        return SpanExportResult.SUCCESS


def test_span_drops_are_counted_from_what_the_sdk_logs(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    handler = logging.FileHandler(log)
    sdk_logger = logging.getLogger("opentelemetry")
    sdk_logger.addHandler(handler)
    exporter = _StuckExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=2, max_export_batch_size=1))
    try:
        tracer = provider.get_tracer("test")
        for index in range(20):
            with tracer.start_as_current_span(f"span {index}"):
                pass
    finally:
        exporter.release.set()
        provider.shutdown()
        sdk_logger.removeHandler(handler)
        handler.close()

    dropped = span_drop_warnings([log, tmp_path / "absent.log"])

    # 20 spans on a queue of 2 drop at least 15; the SDK logs one warning per 20 s window for them all.
    assert dropped in (1, 2)


def test_logs_without_drops_count_zero(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    log.write_text('{"level": "warning", "event": "slow batch"}\n')

    assert span_drop_warnings([log]) == 0
