"""The operator's Prometheus metrics (served when FRAUDOPS_OPERATOR_METRICS_PORT is set)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import Counter

RECONCILES = Counter(
    "fraudops_operator_reconciles_total",
    "Reconciles that ran to the end, by kind and namespace: one per object per tick. A flat line "
    "means the operator is stuck; a test that checks that a tick changed nothing waits on it.",
    ["kind", "namespace"],
)

Handler = TypeVar("Handler", bound=Callable[..., Any])


def counted(kind: str) -> Callable[[Handler], Handler]:
    """Count each call of a reconcile handler that returns (one that raises did not reconcile)."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def reconcile(*args: Any, **kwargs: Any) -> Any:
            result = handler(*args, **kwargs)
            RECONCILES.labels(kind, kwargs.get("namespace") or "").inc()
            return result

        return reconcile  # type: ignore[return-value]

    return wrap
