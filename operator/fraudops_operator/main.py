"""Run the operator standalone (one replica, no peering) against the current kubeconfig or in-cluster."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence


def run(namespaces: Sequence[str] = (), verbose: bool = False, liveness_endpoint: str | None = None) -> None:
    """Watch FraudModels and TrainingRuns in `namespaces` (all namespaces if empty) until stopped."""
    import kopf

    import fraudops_operator.handlers  # noqa: F401 - registers the handlers with Kopf

    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.PLAIN)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    asyncio.run(
        kopf.operator(
            standalone=True,  # the chart runs one replica; peering would need its own CRDs
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            liveness_endpoint=liveness_endpoint,
        )
    )
