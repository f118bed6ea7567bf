"""The fraudops Kopf operator: FraudModel and TrainingRun custom resources.

Layout: `crd` (schemas), `resources` (typed views of the objects), `desired` (pure: spec → children),
`rollout` (pure: the rollout state machine), `analysis` (Prometheus queries and the verdict),
`kube` (the few API calls), `handlers` (thin Kopf wiring).
"""
