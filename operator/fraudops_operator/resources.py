"""Typed, read-only views of FraudModel and TrainingRun objects, as the API server returns them (defaulted).

The defaults themselves live in `crd.py`; code that builds a spec by hand (unit tests) runs it through
`crd.apply_defaults` first, exactly as the API server would.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fraudops.features.spec import DAY
from fraudops.routing import TrainedFeatures
from fraudops_operator import crd

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_SECONDS_PER_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as "90s", "1h30m" or "7d" (the schema's pattern)."""
    if not re.fullmatch(crd.DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: use e.g. 90s, 5m, 1h30m or 7d")
    return sum(float(number) * _SECONDS_PER_UNIT[unit] for number, unit in _DURATION_PART.findall(text))


class Strategy(StrEnum):
    CANARY = "canary"
    AB_TEST = "abTest"
    SHADOW = "shadow"


@dataclass(frozen=True)
class ModelVersion:
    version: str
    model_uri: str
    #: what the version's model was trained with (`spec.<role>.features`), in the routing table's terms
    features: TrainedFeatures = field(default_factory=TrainedFeatures)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> ModelVersion | None:
        if spec is None:
            return None
        return cls(spec["version"], spec["modelUri"], trained_features(spec.get("features")))


def trained_features(spec: Mapping[str, Any] | None) -> TrainedFeatures:
    """`spec.<role>.features`; absent (an object stored under a CRD from before the field): the defaults,
    which are what every artifact was trained with until the field existed. An absent `entityLagEpochs`
    (stored before that field) is 0: the lag of the models trained before it existed."""
    if not spec:
        return TrainedFeatures()
    return TrainedFeatures(
        entity_features=spec.get("entityFeatures", False),
        label_delay_s=spec.get("labelDelayDays", crd.DEFAULT_LABEL_DELAY_DAYS) * DAY,
        entity_epoch_s=spec.get("entityEpochSeconds", crd.DEFAULT_ENTITY_EPOCH_S),
        entity_lag_epochs=spec.get("entityLagEpochs", crd.UNDECLARED_ENTITY_LAG_EPOCHS),
    )


def version_spec(version: ModelVersion) -> dict[str, Any]:
    """`spec.<role>` for this version, its features written in full and bound to it (the inverse of
    `ModelVersion.from_spec`)."""
    features = version.features
    return {
        "version": version.version,
        "modelUri": version.model_uri,
        "features": {
            "forVersion": version.version,
            "entityFeatures": features.entity_features,
            "labelDelayDays": features.label_delay_s / DAY,
            "entityEpochSeconds": features.entity_epoch_s,
            "entityLagEpochs": features.entity_lag_epochs,
        },
    }


@dataclass(frozen=True)
class CanaryStep:
    weight: int
    pause_s: float = 0.0
    analysis: bool = False


@dataclass(frozen=True)
class AnalysisSpec:
    interval_s: float
    window: str  # kept as written: it goes into PromQL range selectors verbatim
    min_samples: int
    max_error_rate: float
    max_p99_latency_ms: float
    max_score_psi: float
    min_feedback_precision: float | None
    prometheus_url: str
    queries: Mapping[str, str] = field(default_factory=dict)
    max_feature_psi: float | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> AnalysisSpec:
        return cls(
            interval_s=parse_duration(spec["interval"]),
            window=spec["window"],
            min_samples=spec["minSamples"],
            max_error_rate=spec["maxErrorRate"],
            max_p99_latency_ms=spec["maxP99LatencyMs"],
            max_score_psi=spec["maxScorePSI"],
            min_feedback_precision=spec.get("minFeedbackPrecision"),
            prometheus_url=spec["prometheusUrl"],
            queries=dict(spec.get("queries") or {}),
            max_feature_psi=spec.get("maxFeaturePSI"),
        )


@dataclass(frozen=True)
class RolloutSpec:
    strategy: Strategy
    steps: tuple[CanaryStep, ...]
    ab_candidate_weight: int
    ab_duration_s: float
    shadow_duration_s: float
    analysis: AnalysisSpec
    auto_promote: bool
    promote: bool
    abort: bool

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> RolloutSpec:
        return cls(
            strategy=Strategy(spec["strategy"]),
            steps=tuple(
                CanaryStep(
                    step["weight"],
                    parse_duration(step["pause"]) if step.get("pause") else 0.0,
                    step.get("analysis", False),
                )
                for step in spec["steps"]
            ),
            ab_candidate_weight=spec["abTest"]["candidateWeight"],
            ab_duration_s=parse_duration(spec["abTest"]["duration"]),
            shadow_duration_s=parse_duration(spec["shadow"]["duration"]),
            analysis=AnalysisSpec.from_spec(spec["analysis"]),
            auto_promote=spec["autoPromote"],
            promote=spec["promote"],
            abort=spec["abort"],
        )


@dataclass(frozen=True)
class PredictorSpec:
    image: str
    min_replicas: int
    max_replicas: int
    resources: Mapping[str, Any]


@dataclass(frozen=True)
class SecretKey:
    name: str
    key: str

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], default_key: str) -> SecretKey:
        return cls(spec["name"], spec.get("key") or default_key)


@dataclass(frozen=True)
class KafkaAuthentication:
    """The consumer's broker login: a Strimzi KafkaUser's SCRAM-SHA-512 credentials, over TLS if `ca` is set."""

    kafka_user: str
    password: SecretKey
    ca: SecretKey | None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> KafkaAuthentication | None:
        if not spec:
            return None
        user = spec["kafkaUser"]
        # Strimzi's user operator writes the password to a Secret named like the KafkaUser.
        password = SecretKey.from_spec(spec.get("passwordSecret") or {"name": user}, "password")
        tls = spec.get("tls")
        return cls(user, password, SecretKey.from_spec(tls["caSecret"], "ca.crt") if tls else None)

    @property
    def security_protocol(self) -> str:
        return "SASL_SSL" if self.ca is not None else "SASL_PLAINTEXT"


@dataclass(frozen=True)
class EntityStateSpec:
    """The entity-state component's settings (`spec.stream.entityState`)."""

    retain_epochs: int
    snapshot_every_epochs: int
    resources: Mapping[str, Any]

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> EntityStateSpec:
        # Absent under a CRD from before the field: the schema's defaults, as the API server would give.
        spec = crd.apply_defaults(crd.ENTITY_STATE_SPEC, dict(spec or {}))
        return cls(spec["retainEpochs"], spec["snapshotEveryEpochs"], spec["resources"])


@dataclass(frozen=True)
class StreamSpec:
    topic: str
    alerts_topic: str
    dlq_topic: str
    partitions: int
    replication_factor: int
    kafka_cluster: str
    bootstrap_servers: str
    consumer_group: str
    min_replicas: int
    max_replicas: int
    lag_threshold: int
    batch_size: int
    image: str
    database_secret_name: str
    database_secret_key: str
    resources: Mapping[str, Any]
    authentication: KafkaAuthentication | None = None
    entity_state: EntityStateSpec = field(default_factory=lambda: EntityStateSpec.from_spec(None))

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], namespace: str) -> StreamSpec:
        # The default names the Service with its namespace: KEDA's operator dials it from its own namespace,
        # where the short name does not resolve (found on the e2e cluster: "lookup fraudops-kafka-bootstrap
        # ... server misbehaving", and the ScaledObject never became Ready).
        default_bootstrap = f"{spec['kafkaCluster']}-kafka-bootstrap.{namespace}.svc:9092"
        return cls(
            topic=spec["topic"],
            alerts_topic=spec.get("alertsTopic", crd.DEFAULT_ALERTS_TOPIC),
            dlq_topic=spec.get("dlqTopic", crd.DEFAULT_DLQ_TOPIC),
            partitions=spec["partitions"],
            replication_factor=spec["replicationFactor"],
            kafka_cluster=spec["kafkaCluster"],
            bootstrap_servers=spec.get("bootstrapServers") or default_bootstrap,
            consumer_group=spec["consumerGroup"],
            min_replicas=spec["minReplicas"],
            max_replicas=spec["maxReplicas"],
            lag_threshold=spec["lagThreshold"],
            batch_size=spec["batchSize"],
            image=spec["image"],
            database_secret_name=spec["databaseSecret"]["name"],
            database_secret_key=spec["databaseSecret"]["key"],
            resources=spec["resources"],
            authentication=KafkaAuthentication.from_spec(spec.get("authentication")),
            entity_state=EntityStateSpec.from_spec(spec.get("entityState")),
        )


@dataclass(frozen=True)
class ObjectRef:
    """What children need to know about their owner."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str
    generation: int

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ObjectRef:
        meta = body["metadata"]
        return cls(
            body.get("apiVersion", crd.API_VERSION),
            body["kind"],
            meta["name"],
            meta["namespace"],
            meta.get("uid", ""),
            meta.get("generation", 1),
        )

    def owner_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class FraudModel:
    ref: ObjectRef
    threshold: float | None
    stable: ModelVersion | None
    candidate: ModelVersion | None
    rollout: RolloutSpec
    predictor: PredictorSpec
    stream: StreamSpec

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def namespace(self) -> str:
        return self.ref.namespace

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> FraudModel:
        spec = body["spec"]
        predictor = spec["predictor"]
        return cls(
            ref=ObjectRef.from_body(body),
            threshold=spec.get("threshold"),
            stable=ModelVersion.from_spec(spec.get("stable")),
            candidate=ModelVersion.from_spec(spec.get("candidate")),
            rollout=RolloutSpec.from_spec(spec["rollout"]),
            predictor=PredictorSpec(
                predictor["image"], predictor["minReplicas"], predictor["maxReplicas"], predictor["resources"]
            ),
            stream=StreamSpec.from_spec(spec["stream"], body["metadata"]["namespace"]),
        )


@dataclass(frozen=True)
class TrainingRun:
    ref: ObjectRef
    data_uri: str
    label_delay_days: float
    output_uri: str
    model_name: str
    version: str
    trials: int
    timeout_s: float
    image: str
    resources: Mapping[str, Any]
    fraud_model: str | None
    entity_features: bool = False
    #: the bank's own columns to train on (`spec.extraColumns`), as `fraudops train` takes them
    extra_numeric: tuple[str, ...] = ()
    extra_categorical: tuple[str, ...] = ()

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> TrainingRun:
        spec = body["spec"]
        ref = ObjectRef.from_body(body)
        fraud_model = (spec.get("fraudModelRef") or {}).get("name")
        extra_columns = spec.get("extraColumns") or {}
        return cls(
            ref=ref,
            data_uri=spec["data"]["uri"],
            label_delay_days=parse_duration(spec["data"]["labelDelay"]) / 86400.0,
            output_uri=spec["output"]["uri"],
            model_name=spec.get("model") or fraud_model or "card-fraud",
            version=spec.get("version") or ref.name,
            trials=spec["optuna"]["trials"],
            timeout_s=parse_duration(spec["optuna"]["timeout"]),
            image=spec["image"],
            resources=spec["resources"],
            fraud_model=fraud_model,
            entity_features=spec.get("entityFeatures", False),
            extra_numeric=tuple(extra_columns.get("numeric") or ()),
            extra_categorical=tuple(extra_columns.get("categorical") or ()),
        )
