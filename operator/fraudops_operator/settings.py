"""The operator's own knobs, from the environment (FRAUDOPS_OPERATOR_<NAME>)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fraudops_operator.trust import ImagePolicy


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FRAUDOPS_OPERATOR_", extra="ignore")

    tick_s: float = Field(
        10.0,
        gt=0,
        description="How often each FraudModel and TrainingRun is reconciled; "
        "rollout pauses and analysis intervals are honoured to this resolution.",
    )
    resync_s: float = Field(
        300.0,
        gt=0,
        description="Re-apply children whose desired state did not change "
        "this often, to repair drift (a change is applied at the next tick).",
    )
    allowed_images: str = Field(
        "ghcr.io/fraudops/",
        description="Comma-separated image references and "
        "repository prefixes that FraudModels and TrainingRuns may run; `*` allows any "
        "(see trust.py).",
    )
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Serve Prometheus metrics (reconciles, rollout phase, weight, verdicts) on this port (0: off).",
    )

    @property
    def image_policy(self) -> ImagePolicy:
        return ImagePolicy.parse(self.allowed_images)
