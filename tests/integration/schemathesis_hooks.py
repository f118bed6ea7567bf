"""Schemathesis hooks for the gateway's run: what this API's own string format `event-time` means.

The gateway's OpenAPI document describes `event-time` in words (an RFC 3339 date-time with a UTC
offset of at most 15:59, its year as written from 1970, at most one day after the gateway's
clock): JSON Schema has no keyword for a bound that moves with the clock. Loaded by
`SCHEMATHESIS_HOOKS`, this gives the fuzzer the same rule as a generator, so its positive cases
are exactly the times the API accepts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import schemathesis
from hypothesis import strategies as st

_MAX_OFFSET_MINUTES = 15 * 60 + 59


def _render(written: datetime, offset_minutes: int | None) -> str:
    if offset_minutes is None:
        return written.isoformat() + "Z"
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{written.isoformat()}{sign}{hours:02d}:{minutes:02d}"


def event_times() -> st.SearchStrategy[str]:
    # Written at least two days before now: whatever the offset, the moment is not in the future.
    latest = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=2)  # as written; the offset comes after
    written = st.datetimes(min_value=datetime(1970, 1, 1), max_value=latest)
    offsets = st.none() | st.integers(-_MAX_OFFSET_MINUTES, _MAX_OFFSET_MINUTES)
    return st.builds(_render, written, offsets)


schemathesis.openapi.format("event-time", event_times())
