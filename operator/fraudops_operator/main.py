"""Run the operator against the current kubeconfig or in-cluster: standalone, or one of several replicas
that agree through a Kopf peering object which of them acts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence


def run(
    namespaces: Sequence[str] = (),
    verbose: bool = False,
    liveness_endpoint: str | None = None,
    peering: str | None = None,
) -> None:
    """Watch FraudModels and TrainingRuns in `namespaces` (all namespaces if empty) until stopped. With
    `peering`, replicas sharing that (Cluster)KopfPeering object pause while another one acts."""
    import kopf

    import fraudops_operator.handlers  # noqa: F401 - registers the handlers with Kopf
    from fraudops.tracing import configure_tracing
    from fraudops_operator.installed_crds import check_installed_crds
    from fraudops_operator.kube import Kube

    check_installed_crds(Kube.from_environment())  # stale CRDs would silently drop this release's fields
    configure_tracing("fraudops-operator")

    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.PLAIN)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    asyncio.run(
        kopf.operator(
            standalone=peering is None,  # peering needs Kopf's peering CRDs (the chart installs them)
            peering_name=peering,
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            liveness_endpoint=liveness_endpoint,
        )
    )
