"""The routing table: which model variant decides each transaction, and which ones score it in shadow.

The operator writes the table (a ConfigMap mounted as a file, and FraudModel `status.routing`);
the gateway and the stream consumer read it and route deterministically:

* `serve` variants split decisions per transaction (a canary: 10% means ~10% of transactions);
* `ab` variants split decisions per customer (sticky: a customer always sees the same variant);
* `shadow` variants score every transaction but never decide; their scores are recorded.

Buckets come from a stable hash (the same SipHash the features use) of the transaction or customer
id and the table's salt, modulo 10,000, so every replica routes a transaction the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fraudops.errors import ConfigurationError
from fraudops.features.encode import stable_hash_texts
from fraudops.features.spec import DAY, FeatureConfig

BUCKETS = 10_000


class VariantMode(StrEnum):
    SERVE = "serve"
    AB = "ab"
    SHADOW = "shadow"


class TrainedFeatures(BaseModel):
    """What a model version was trained with that its scorer must reproduce: the feature configuration
    (its artifact's `feature_config`) and whether the entity-risk features were among its inputs (its
    `training.entity_features`: then it needs the entity table, docs/entity-features.md).

    The operator writes it into each variant from the FraudModel's `spec.<stable|candidate>.features`, so
    a scorer that holds no artifact (a remote KServe predictor) still computes the features as the model
    was trained; where the artifact is at hand (an embedded scorer, the predictor) it is checked against it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    entity_features: bool = False
    label_delay_s: float = Field(FeatureConfig().label_delay_s, gt=0)
    entity_epoch_s: float = Field(FeatureConfig().entity_epoch_s, gt=0)
    entity_lag_epochs: int = Field(FeatureConfig().entity_lag_epochs, ge=0)

    @model_validator(mode="after")
    def _usable(self) -> TrainedFeatures:
        self.config  # noqa: B018 - raises ValueError for settings the feature engines refuse
        return self

    @classmethod
    def recorded(cls, feature_config: Mapping[str, Any], training: Mapping[str, Any]) -> TrainedFeatures:
        """From an artifact's metadata. ValueError: a configuration this build cannot use. Artifacts from
        before the entity flag were trained without the entity features (the default then and now)."""
        config = FeatureConfig.from_dict(feature_config)
        return cls(entity_features=bool(training.get("entity_features", False)), **config.as_dict())

    @property
    def config(self) -> FeatureConfig:
        return FeatureConfig(
            label_delay_s=self.label_delay_s,
            entity_epoch_s=self.entity_epoch_s,
            entity_lag_epochs=self.entity_lag_epochs,
        )

    def describe(self) -> str:
        entity = "with" if self.entity_features else "without"
        return (
            f"{entity} the entity features, label delay {self.label_delay_s / DAY:g} d, "
            f"entity epoch {self.entity_epoch_s:g} s, entity table read {self.entity_lag_epochs} epoch(s) behind"
        )

    def compared(self) -> TrainedFeatures:
        """What must agree: the entity lag matters only to a model that reads the entity table (artifacts
        from before the lag record 0, newer ones 1; both describe a model without the entity features)."""
        return self if self.entity_features else self.model_copy(update={"entity_lag_epochs": 0})

    def mismatch(self, recorded: TrainedFeatures, model: str) -> str | None:
        """Why this declaration does not describe the artifact of `model` that records `recorded` (None: it does)."""
        if recorded.compared() == self.compared():
            return None
        return (
            f"model {model} was trained {recorded.describe()}, but it is declared {self.describe()}: "
            "correct the declaration (the FraudModel's spec.stable/candidate.features) to what the artifact records"
        )


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=r"^[a-z0-9-]+$", description="stable, canary, challenger, …")
    model_version: str
    weight: float = Field(
        100.0, ge=0, le=100, description="Share of decisions in percent (ignored for shadow)."
    )
    mode: VariantMode = VariantMode.SERVE
    model_uri: str | None = Field(None, description="Artifact to score in-process (embedded scoring).")
    endpoint: str | None = Field(None, description="KServe base URL to score over the V2 protocol instead.")
    features: TrainedFeatures | None = Field(
        None,
        description="What the version was trained with (feature configuration, entity features); absent: "
        "unknown for a remote variant, read from the artifact for a local one.",
    )

    @model_validator(mode="after")
    def _has_a_model(self) -> Variant:
        if not self.model_uri and not self.endpoint:
            raise ValueError(f"variant {self.name!r} needs a model_uri or an endpoint")
        return self


class RoutingTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_name: str = "card-fraud"
    salt: str = ""
    variants: list[Variant]

    @model_validator(mode="after")
    def _coherent(self) -> RoutingTable:
        deciding = self.deciding
        if not deciding:
            raise ValueError("the routing table needs at least one serve or ab variant")
        if len({v.mode for v in deciding}) > 1:
            raise ValueError(
                "deciding variants must all be `serve` (per transaction) or all `ab` (per customer)"
            )
        total = sum(v.weight for v in deciding)
        if abs(total - 100.0) > 1e-6:
            raise ValueError(f"weights of deciding variants must sum to 100, not {total:g}")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique: {names}")
        return self

    @property
    def deciding(self) -> list[Variant]:
        return [v for v in self.variants if v.mode != VariantMode.SHADOW]

    @property
    def shadows(self) -> list[Variant]:
        return [v for v in self.variants if v.mode == VariantMode.SHADOW]

    def route(self, transaction_ids: np.ndarray, customer_ids: np.ndarray) -> np.ndarray:
        """Index into `deciding` of the variant that decides each transaction."""
        deciding = self.deciding
        if len(deciding) == 1:
            return np.zeros(len(transaction_ids), dtype=np.int64)
        sticky = deciding[0].mode == VariantMode.AB
        keys = np.asarray(customer_ids if sticky else transaction_ids, dtype=object)
        if sticky:  # anonymous customers fall back to per-transaction routing
            keys = np.where(keys == None, transaction_ids, keys)  # noqa: E711 - elementwise comparison
        buckets = stable_hash_texts([f"{self.salt}:{key}" for key in keys]).view(np.uint64) % BUCKETS
        edges = np.cumsum([v.weight * BUCKETS / 100.0 for v in deciding])
        return np.minimum(np.searchsorted(edges, buckets, side="right"), len(deciding) - 1)

    @classmethod
    def single(cls, model_version: str, model_uri: str, model_name: str = "card-fraud") -> RoutingTable:
        return cls(
            model_name=model_name,
            variants=[Variant(name="stable", model_version=model_version, model_uri=model_uri)],
        )


def load_routing_table(path: Path) -> RoutingTable:
    """Read a routing table from YAML or JSON (the operator's ConfigMap key `routing.yaml`)."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read routing table {path}: {exc}") from exc
    try:
        return RoutingTable.model_validate(document)
    except ValueError as exc:
        raise ConfigurationError(f"invalid routing table {path}: {exc}") from exc
