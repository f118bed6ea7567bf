"""The FraudModel and TrainingRun schemas: the single source of the CRD YAML in `manifests/crds/`.

Everything the API server can check is checked here (types, defaults, enums, ranges, CEL rules
with messages), so an invalid resource is rejected at `kubectl apply` time, before the operator
ever sees it. `python -m fraudops_operator.crd` rewrites the YAML; `--check` fails if it is stale.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from fraudops.features.spec import DAY, MAX_ENTITY_LABEL_DELAY_DAYS, MAX_ENTITY_LAG_EPOCHS, FeatureConfig
from fraudops.schema import EXTRA_NAME_PATTERN, MAX_EXTRA_FIELDS

GROUP = "fraudops.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST_DIR = REPO_ROOT / "manifests" / "crds"

# Go-style durations plus days: "90s", "5m", "1h30m", "7d".
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$"
# Versions become part of object names and label values: lower-case DNS-ish, short.
VERSION_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
VERSION_MAX_LENGTH = 24
# The InferenceService of a version is `<model>-<version>`; KServe appends `-predictor` to make the
# Service name, which must stay within 63 characters: 28 + 1 + 24 + 10 = 63.
MODEL_NAME_MAX_LENGTH = 28
URI_PATTERN = r"^[a-z][a-z0-9+.-]*://\S+$"
DEFAULT_APP_IMAGE = "ghcr.io/fraudops/fraudops:0.1.0"
DEFAULT_PREDICTOR_IMAGE = "ghcr.io/fraudops/predictor:0.1.0"


# --------------------------------------------------------------------------- defaults


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """A copy of `value` with the schema's defaults filled in, as the API server's structural defaulting
    does (unit tests build specs with it, so defaults have one source: this file)."""
    value = copy.deepcopy(value)
    if schema.get("type") == "object" and isinstance(value, dict):
        for name, prop in schema.get("properties", {}).items():
            if name not in value and "default" in prop:
                value[name] = copy.deepcopy(prop["default"])
            if name in value:
                value[name] = apply_defaults(prop, value[name])
    elif schema.get("type") == "array" and isinstance(value, list):
        value = [apply_defaults(schema["items"], item) for item in value]
    return value


# --------------------------------------------------------------------------- schema helpers


def _keywords(schema: dict[str, Any], **keywords: Any) -> dict[str, Any]:
    """`schema` with each of the JSON Schema `keywords` that is given (not None), in their order."""
    schema.update((keyword, value) for keyword, value in keywords.items() if value is not None)
    return schema


def _str(
    description: str,
    *,
    default: str | None = None,
    pattern: str | None = None,
    enum: list[str] | None = None,
    max_length: int | None = 253,
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "description": description}
    if enum is not None:
        return _keywords(schema, enum=enum, default=default)
    return _keywords(schema, pattern=pattern, maxLength=max_length, default=default)


def _int(
    description: str, *, default: int | None = None, minimum: int | None = None, maximum: int | None = None
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "description": description}
    return _keywords(schema, minimum=minimum, maximum=maximum, default=default)


def _num(
    description: str,
    *,
    default: float | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number", "description": description}
    return _keywords(schema, minimum=minimum, maximum=maximum, default=default)


def _bool(description: str, default: bool) -> dict[str, Any]:
    return {"type": "boolean", "description": description, "default": default}


def _duration(description: str, default: str | None = None) -> dict[str, Any]:
    return _str(
        f"{description} Duration such as 90s, 5m, 1h30m or 7d.",
        default=default,
        pattern=DURATION_PATTERN,
        max_length=32,
    )


def _obj(
    description: str,
    properties: dict[str, Any],
    *,
    required: list[str] | None = None,
    defaulted: bool = False,
    rules: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """An object schema. `defaulted`: an absent object becomes one with all its fields' defaults (the API
    server validates a default against the rules as written, so it must be spelled out in full)."""
    schema: dict[str, Any] = {"type": "object", "description": description, "properties": properties}
    if required:
        schema["required"] = required
    if rules:
        schema["x-kubernetes-validations"] = rules
    if defaulted:
        schema["default"] = apply_defaults(schema, {})
    return schema


def _rule(
    rule: str, message: str, *, field_path: str | None = None, message_expression: str | None = None
) -> dict[str, str]:
    # Static messages where numbers are involved: the API server refuses messageExpressions that print
    # them (cost estimate). `message` stays the fallback of a `messageExpression`.
    validation = {"rule": rule, "message": message}
    if message_expression is not None:
        validation["messageExpression"] = message_expression
    if field_path is not None:
        validation["fieldPath"] = field_path
    return validation


_QUANTITY = {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}


def _resources(description: str, default: dict[str, Any]) -> dict[str, Any]:
    quantities = {"type": "object", "additionalProperties": _QUANTITY, "maxProperties": 8}
    schema = _obj(description, {"requests": quantities, "limits": quantities})
    schema["default"] = default
    return schema


def _conditions() -> dict[str, Any]:
    condition = _obj(
        "The standard Kubernetes condition.",
        {
            "type": _str("Ready, Progressing, AnalysisPassed, …", max_length=64),
            "status": _str("True, False or Unknown.", enum=["True", "False", "Unknown"]),
            "reason": _str("One CamelCase word.", max_length=128),
            "message": _str("What happened, with the numbers behind it.", max_length=32768),
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer"},
        },
        required=["type", "status"],
    )
    return {
        "type": "array",
        "description": "Standard conditions (type/status/reason/message/…).",
        "items": condition,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    }


# --------------------------------------------------------------------------- FraudModel


#: What training uses unless told otherwise (`fraudops train`; TrainingRun spec.data.labelDelay: 7d).
DEFAULT_LABEL_DELAY_DAYS = FeatureConfig().label_delay_s / DAY
DEFAULT_ENTITY_EPOCH_S = FeatureConfig().entity_epoch_s
#: Not training's default (1): what a declaration without the field describes. FraudModels stored before
#: the field described models trained before the lag existed, which read the entity table with none.
UNDECLARED_ENTITY_LAG_EPOCHS = 0


def _version_features() -> dict[str, Any]:
    label_delay = _num(
        "Label delay the features were computed with: feature_config.label_delay_s in days "
        "(`fraudops train --label-delay-days`, a TrainingRun's data.labelDelay).",
        default=DEFAULT_LABEL_DELAY_DAYS,
        minimum=0,
        maximum=MAX_ENTITY_LABEL_DELAY_DAYS,
    )
    label_delay["exclusiveMinimum"] = True
    return _obj(
        "What this version's model was trained with, as its artifact records it (metadata.yaml: "
        "training.entity_features and feature_config); absent: the defaults. A TrainingRun's hand-over fills "
        "it in. The operator does not read artifacts (KServe's storage initializer does): it runs the scorers "
        "by this, and the predictor checks it against the artifact when it loads and refuses to start on a "
        "mismatch.",
        {
            "forVersion": _str(
                "The version this declaration describes: must equal the version's `version`, so that a "
                "change of version (a merge patch of version and modelUri) cannot keep the previous "
                "version's features. Required unless the declaration says only the defaults.",
                pattern=VERSION_PATTERN,
                max_length=VERSION_MAX_LENGTH,
            ),
            "entityFeatures": _bool(
                "Trained with the entity-risk features (`fraudops train --entity-features`): the operator "
                "runs the entity-state component (`fraudops stream entities`, Deployment "
                "<model>-entity-state) and the consumer reads its table (ENTITY_TABLE=true).",
                False,
            ),
            "labelDelayDays": label_delay,
            "entityEpochSeconds": _num(
                "Entity epoch length: feature_config.entity_epoch_s (training uses 60).",
                default=DEFAULT_ENTITY_EPOCH_S,
                minimum=1,
                maximum=3600,
            ),
            "entityLagEpochs": _int(
                "How many epochs behind its transaction the model reads the entity table: "
                "feature_config.entity_lag_epochs (a transaction of epoch e reads the table as of the start of "
                "epoch e - entityLagEpochs). Matters only with entityFeatures. A model trained now records 1, "
                "and a TrainingRun's hand-over writes it; absent: 0, what models trained before the lag existed "
                "record (FraudModels stored before this field describe those). A candidate and its stable that "
                "both have entityFeatures must have the same: the consumer and the gateway read the table at "
                "one lag.",
                default=UNDECLARED_ENTITY_LAG_EPOCHS,
                minimum=0,
                maximum=MAX_ENTITY_LAG_EPOCHS,
            ),
        },
    )


def _model_version(field: str, role: str) -> dict[str, Any]:
    # A merge patch replaces the fields it names and keeps the others: `{"version": "v7", "modelUri": ...}`
    # would keep v6's features, and v7's predictor would refuse its artifact. Binding the declaration to
    # its version makes the API server refuse that patch instead, saying what to write.
    # Without forVersion only the defaults, which say no more than no declaration: what FraudModels stored
    # before forVersion existed hold (the old schema defaulted the block), so they stay valid. Any
    # entityLagEpochs is the defaults' here: without the entity features the model reads no entity table.
    bound = _rule(
        "!has(self.features) || (has(self.features.forVersion) ? self.features.forVersion == self.version : "
        f"!self.features.entityFeatures && self.features.labelDelayDays == {float(DEFAULT_LABEL_DELAY_DAYS)!r} "
        f"&& self.features.entityEpochSeconds == {float(DEFAULT_ENTITY_EPOCH_S)!r})",
        f"spec.{field}.features describe another version than spec.{field}.version: write the new version's "
        "features in the same patch, with forVersion set to it, or features: null for the defaults",
        field_path=".features",
        message_expression=(
            f"'spec.{field}.features are declared for ' + "
            "(has(self.features.forVersion) ? self.features.forVersion : 'no version') + ', not for ' + "
            "self.version + ': write ' + self.version + \"'s features in the same patch (features: "
            "{forVersion: \" + self.version + ', ...}), or features: null for the defaults'"
        ),
    )
    return _obj(
        f"The {role} model version.",
        {
            "version": _str(
                "Version label; part of the InferenceService name.",
                pattern=VERSION_PATTERN,
                max_length=VERSION_MAX_LENGTH,
            ),
            "modelUri": _str(
                "Storage URI of the artifact (s3://, gs://, pvc://, https://, …), as KServe's "
                "storage initializer reads it.",
                pattern=URI_PATTERN,
                max_length=1024,
            ),
            "features": _version_features(),
        },
        required=["version", "modelUri"],
        rules=[bound],
    )


def _declared(field: str, setting: str, default: float) -> str:
    """CEL: a feature setting of spec.<field>, or its default when the version declares no features."""
    return f"(has(self.{field}.features) ? self.{field}.features.{setting} : {float(default)!r})"


def _reads_entity_table(field: str) -> str:
    """CEL: whether spec.<field> declares the entity features (no declaration: it does not)."""
    return f"(has(self.{field}.features) && self.{field}.features.entityFeatures)"


def _entity_lag(field: str) -> str:
    """CEL: spec.<field>'s entityLagEpochs, absent read as UNDECLARED_ENTITY_LAG_EPOCHS (only where
    `_reads_entity_table(field)` holds: the declaration is there)."""
    features = f"self.{field}.features"
    return f"(has({features}.entityLagEpochs) ? {features}.entityLagEpochs : {UNDECLARED_ENTITY_LAG_EPOCHS})"


_CANARY_STEP = _obj(
    "One canary step: shift traffic, then wait and/or analyse before the next.",
    {
        "weight": _int("Percent of decisions the candidate takes during this step.", minimum=0, maximum=100),
        "pause": _duration("Minimum time at this weight before moving on."),
        "analysis": _bool("Run the metric analysis at this weight; it must pass before moving on.", False),
    },
    required=["weight"],
)

_QUERIES = _obj(
    "PromQL overrides. Placeholders: {variant} (routing variant), {version}, {model} (FraudModel name), "
    "{namespace}, {inferenceservice}, {window}.",
    {
        "samples": _str("Decisions made by the variant in the window (a number).", max_length=4096),
        "errorRate": _str("Failed / attempted scorings of the variant in the window (0–1).", max_length=4096),
        "p99LatencyMs": _str("p99 latency of the variant's predictor in milliseconds.", max_length=4096),
        "scoreBuckets": _str("Score histogram of the variant by `le` (cumulative counts).", max_length=4096),
        "feedbackPrecision": _str("Precision on labelled feedback of the variant (0–1).", max_length=4096),
        "featurePSI": _str(
            "Largest per-feature PSI of the variant against its training distribution.", max_length=4096
        ),
    },
)

_ANALYSIS = _obj(
    "How each analysed step is judged, from Prometheus.",
    {
        "interval": _duration("Time between two analyses (the first runs one interval into a step).", "1m"),
        "window": _duration("Range of the PromQL queries ({window}).", "5m"),
        "minSamples": _int(
            "Candidate decisions needed before a verdict; fewer means wait.", default=500, minimum=0
        ),
        "maxErrorRate": _num(
            "Roll back above this candidate error rate.", default=0.01, minimum=0, maximum=1
        ),
        "maxP99LatencyMs": _num("Roll back above this candidate p99 latency.", default=50, minimum=0),
        "maxScorePSI": _num(
            "Roll back above this score drift (PSI of candidate vs stable scores).", default=0.2, minimum=0
        ),
        "minFeedbackPrecision": _num(
            "Roll back below this precision on labelled feedback (unset: not checked; "
            "no labelled feedback in the window: not checked either).",
            minimum=0,
            maximum=1,
        ),
        "maxFeaturePSI": _num(
            "Roll back when a feature of the candidate drifts beyond this PSI against the "
            "training distribution stored in its artifact (unset: not checked; no drift metrics "
            "in the window: not checked either).",
            minimum=0,
        ),
        "prometheusUrl": _str(
            "Prometheus HTTP API base URL.",
            default="http://prometheus-operated.monitoring.svc:9090",
            pattern=r"^https?://\S+$",
            max_length=1024,
        ),
        "queries": _QUERIES,
    },
    defaulted=True,
)

_ROLLOUT = _obj(
    "How a candidate replaces the stable version.",
    {
        "strategy": _str(
            "canary: stepped traffic shift per transaction; abTest: sticky split per customer; "
            "shadow: the candidate scores every transaction but never decides.",
            enum=["canary", "abTest", "shadow"],
            default="canary",
        ),
        "steps": {
            "type": "array",
            "description": "Canary steps, in order.",
            "maxItems": 20,
            "items": _CANARY_STEP,
            "default": [
                {"weight": 10, "pause": "5m"},
                {"weight": 25, "analysis": True},
                {"weight": 50, "analysis": True},
            ],
        },
        "abTest": _obj(
            "The A-B split (sticky per customer) and how long it runs.",
            {
                "stableWeight": _int(
                    "Percent of customers kept on the stable version.", default=50, minimum=0, maximum=100
                ),
                "candidateWeight": _int(
                    "Percent of customers on the candidate.", default=50, minimum=0, maximum=100
                ),
                "duration": _duration("How long the test runs (analysed every interval).", "1h"),
            },
            defaulted=True,
            rules=[
                _rule(
                    "self.stableWeight + self.candidateWeight == 100",
                    "abTest weights must sum to 100: stableWeight + candidateWeight",
                )
            ],
        ),
        "shadow": _obj(
            "The shadow run.",
            {
                "duration": _duration(
                    "How long the candidate scores in shadow (analysed every interval).", "1h"
                ),
            },
            defaulted=True,
        ),
        "analysis": _ANALYSIS,
        "autoPromote": _bool("Promote when the last step passes; if false, wait for `promote: true`.", True),
        "promote": _bool(
            "Promote the current candidate now, at any step (also after a rollback or an abort). "
            "It acts on the current candidate only: set it back to false before changing the "
            "candidate.",
            False,
        ),
        "abort": _bool(
            "Abort the current rollout now: 100% back to stable, the candidate's InferenceService "
            "deleted. A finished rollout stays finished; to try the same version again, remove "
            "spec.candidate and add it back.",
            False,
        ),
    },
    defaulted=True,
    rules=[
        _rule(
            "self.strategy != 'canary' || size(self.steps) > 0",
            "a canary rollout needs at least one step",
            field_path=".steps",
        ),
        _rule(
            "self.steps.map(s, s.weight).isSorted()",
            "canary step weights must not decrease",
            field_path=".steps",
        ),
        _rule("!(self.promote && self.abort)", "rollout.promote and rollout.abort cannot both be true"),
    ],
)

# Names of Kubernetes objects (Secrets, KafkaUsers): DNS-1123 subdomains.
OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


def _secret_key_ref(description: str, default_key: str) -> dict[str, Any]:
    return _obj(
        description,
        {
            "name": _str("Secret name.", pattern=OBJECT_NAME_PATTERN, max_length=253),
            "key": _str(
                "Key in the Secret.", default=default_key, pattern=r"^[-._a-zA-Z0-9]+$", max_length=253
            ),
        },
        required=["name"],
    )


_KAFKA_AUTHENTICATION = _obj(
    "How the consumer (and KEDA, reading the group's lag) log in to the broker; absent: the listener takes "
    "no credentials. The operator gives the consumer KAFKA_SECURITY_PROTOCOL and KAFKA_SASL_* (the password "
    "by secretKeyRef, never its value) and creates a KEDA TriggerAuthentication <model>-consumer for the "
    "ScaledObject. The KafkaUser's ACLs must allow Read on the topic and the group, and Write on the alerts "
    "and dead-letter topics (the fraudops chart's `fraudops-consumer` user does).",
    {
        "type": _str(
            "SASL mechanism: scram-sha-512, what a Strimzi KafkaUser with `authentication.type: "
            "scram-sha-512` logs in with (and the listener's `authentication.type`).",
            enum=["scram-sha-512"],
        ),
        "kafkaUser": _str(
            "The Strimzi KafkaUser the consumer logs in as (its name is the SASL user name).",
            pattern=OBJECT_NAME_PATTERN,
            max_length=253,
        ),
        "passwordSecret": _secret_key_ref(
            "Secret holding the password (default: the one Strimzi's user operator writes, named like "
            "the KafkaUser, key `password`).",
            "password",
        ),
        "tls": _obj(
            "The listener uses TLS (SASL_SSL); absent: SASL_PLAINTEXT.",
            {
                "caSecret": _secret_key_ref(
                    "Secret with the CA certificate that signed the brokers' (Strimzi: "
                    "<kafkaCluster>-cluster-ca-cert, key ca.crt).",
                    "ca.crt",
                )
            },
            required=["caSecret"],
        ),
    },
    required=["type", "kafkaUser"],
)

# Fields added after the first release: an operator reading objects stored under an older CRD (Helm never
# upgrades `crds/`) falls back to these, as the API server's defaulting would.
DEFAULT_ALERTS_TOPIC = "fraud-alerts"
DEFAULT_DLQ_TOPIC = "transactions.dlq"

ENTITY_STATE_SPEC = _obj(
    "The entity-state component (`fraudops stream entities`, Deployment <model>-entity-state): runs only while "
    "a served version has features.entityFeatures. One replica reads every partition of the topic and publishes "
    "the entity table to the database once per epoch (docs/entity-features.md); it uses the consumer's image, "
    "database Secret and broker login.",
    {
        "retainEpochs": _int(
            "Epochs of published table changes kept behind the newest (--retain-epochs): how far, in event "
            "time, a consumer may lag the component and still read every record at its own epoch.",
            default=1440,
            minimum=1,
        ),
        "snapshotEveryEpochs": _int(
            "Epochs between full snapshots of the table (--snapshot-every): what a restarted consumer or "
            "component rebuilds from.",
            default=240,
            minimum=1,
        ),
        "resources": _resources(
            "Container resources (measured: ~600 MiB at a million entities).",
            {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        ),
    },
    defaulted=True,
)

_STREAM = _obj(
    "The Kafka stream this model scores, and its KEDA-scaled consumer.",
    {
        "topic": _str(
            "Transactions topic.", default="transactions", pattern=r"^[a-zA-Z0-9._-]+$", max_length=200
        ),
        "alertsTopic": _str(
            "Topic the consumer publishes alerts to (it must exist: the consumer refuses to start without it).",
            default=DEFAULT_ALERTS_TOPIC,
            pattern=r"^[a-zA-Z0-9._-]+$",
            max_length=200,
        ),
        "dlqTopic": _str(
            "Dead-letter topic for records the consumer refuses (it must exist, as the alerts topic).",
            default=DEFAULT_DLQ_TOPIC,
            pattern=r"^[a-zA-Z0-9._-]+$",
            max_length=200,
        ),
        "partitions": _int(
            "Partitions of the topic (upper bound of useful consumers).", default=6, minimum=1, maximum=1000
        ),
        "replicationFactor": _int("Topic replicas.", default=1, minimum=1, maximum=10),
        "kafkaCluster": _str(
            "Strimzi Kafka cluster name (label strimzi.io/cluster).", default="fraudops", max_length=63
        ),
        "bootstrapServers": _str(
            "Kafka bootstrap servers (default: <kafkaCluster>-kafka-bootstrap.<namespace>.svc:9092).",
            max_length=1024,
        ),
        "consumerGroup": _str("Consumer group of the scorers.", default="fraud-scorer", max_length=200),
        "minReplicas": _int("Fewest consumers KEDA keeps.", default=1, minimum=0, maximum=1000),
        "maxReplicas": _int(
            "Most consumers KEDA runs (no more than partitions).", default=6, minimum=1, maximum=1000
        ),
        "lagThreshold": _int(
            "Consumer-group lag per replica that makes KEDA scale out.", default=1000, minimum=1
        ),
        "batchSize": _int("Records per consumer batch.", default=500, minimum=1, maximum=100000),
        "image": _str(
            "Consumer image (runs `fraudops stream consume`).", default=DEFAULT_APP_IMAGE, max_length=512
        ),
        "databaseSecret": _obj(
            "Secret holding the PostgreSQL URL (env DB_URL).",
            {
                "name": _str("Secret name.", default="fraudops-db", max_length=253),
                "key": _str("Key of the URL in the Secret.", default="url", max_length=253),
            },
            defaulted=True,
        ),
        "authentication": _KAFKA_AUTHENTICATION,
        "resources": _resources(
            "Consumer container resources.",
            {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        ),
        "entityState": ENTITY_STATE_SPEC,
    },
    defaulted=True,
    rules=[
        _rule(
            "self.maxReplicas <= self.partitions",
            "stream.maxReplicas must not exceed stream.partitions: a "
            "consumer group cannot use more consumers than the topic has partitions",
            field_path=".maxReplicas",
        ),
        _rule(
            "self.minReplicas <= self.maxReplicas",
            "stream.minReplicas must not exceed stream.maxReplicas",
            field_path=".minReplicas",
        ),
    ],
)

_PREDICTOR = _obj(
    "The KServe predictor that serves each version.",
    {
        "image": _str(
            "Predictor image (runs `python -m fraudops_predictor`).",
            default=DEFAULT_PREDICTOR_IMAGE,
            max_length=512,
        ),
        "minReplicas": _int("Fewest predictor pods per version.", default=1, minimum=1, maximum=100),
        "maxReplicas": _int("Most predictor pods per version.", default=3, minimum=1, maximum=100),
        "resources": _resources(
            "Predictor container resources.",
            {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        ),
    },
    defaulted=True,
    rules=[
        _rule(
            "self.minReplicas <= self.maxReplicas",
            "predictor.minReplicas must not exceed predictor.maxReplicas",
        )
    ],
)

FRAUD_MODEL_SPEC = _obj(
    "A fraud model: its versions, how a candidate rolls out, and the stream it scores.",
    {
        "threshold": _num(
            "Decision threshold for every version (unset: each artifact's own threshold).",
            minimum=0,
            maximum=1,
        ),
        "stable": _model_version("stable", "stable (serving)"),
        "candidate": _model_version("candidate", "candidate (being rolled out)"),
        "rollout": _ROLLOUT,
        "predictor": _PREDICTOR,
        "stream": _STREAM,
    },
    rules=[
        _rule(
            "!has(self.candidate) || has(self.stable)",
            "a candidate needs a stable version to roll out against: set spec.stable",
            field_path=".candidate",
        ),
        _rule(
            "!has(self.candidate) || !has(self.stable) || self.candidate.version != self.stable.version",
            "spec.candidate.version must differ from spec.stable.version",
            field_path=".candidate.version",
        ),
        # One consumer computes the features for every variant it routes to, and one entity-state component
        # keeps the table with one configuration.
        _rule(
            "!has(self.candidate) || !has(self.stable) || "
            f"({_declared('candidate', 'labelDelayDays', DEFAULT_LABEL_DELAY_DAYS)} == "
            f"{_declared('stable', 'labelDelayDays', DEFAULT_LABEL_DELAY_DAYS)} && "
            f"{_declared('candidate', 'entityEpochSeconds', DEFAULT_ENTITY_EPOCH_S)} == "
            f"{_declared('stable', 'entityEpochSeconds', DEFAULT_ENTITY_EPOCH_S)})",
            "spec.candidate.features must have the stable's labelDelayDays and entityEpochSeconds: the consumer "
            "computes one set of features for both versions (a model trained with other settings replaces "
            "spec.stable instead of rolling out against it)",
            field_path=".candidate.features",
        ),
        # The lag says which epoch of that table a transaction reads: the consumer and the gateway keep one
        # feature configuration (Decider.feature_config), so the variants that read the table agree on it. A
        # version without the entity features reads no table, so its lag may be anything.
        _rule(
            "!has(self.candidate) || !has(self.stable) || "
            f"!({_reads_entity_table('candidate')} && {_reads_entity_table('stable')}) || "
            f"{_entity_lag('candidate')} == {_entity_lag('stable')}",
            "spec.candidate.features must have the stable's entityLagEpochs when both versions have "
            "entityFeatures: the consumer and the gateway read the entity table at one lag for both (a model "
            "trained with another lag replaces spec.stable instead of rolling out against it)",
            field_path=".candidate.features.entityLagEpochs",
        ),
        # promote/abort act on whichever candidate is current: a leftover `promote: true` must not
        # instantly promote the next candidate.
        _rule(
            "!has(self.candidate) || (has(oldSelf.candidate) && oldSelf.candidate.version == self.candidate.version)"
            " || (!self.rollout.promote && !self.rollout.abort)",
            "set rollout.promote and rollout.abort to false when changing the candidate: they act on the "
            "current candidate only",
            field_path=".rollout",
        ),
    ],
)

_ROUTING_VARIANT = _obj(
    "One routing variant (fraudops.routing.Variant).",
    {
        "name": {"type": "string"},
        "model_version": {"type": "string"},
        "weight": {"type": "number"},
        "mode": {"type": "string"},
        "model_uri": {"type": "string"},
        "endpoint": {"type": "string"},
    },
)

FRAUD_MODEL_STATUS = _obj(
    "What the operator observed and decided.",
    {
        "phase": _str(
            "Pending, Stable, Progressing, Paused, Analysing, Promoted, RolledBack or Aborted.", max_length=32
        ),
        "stableVersion": _str(
            "The version deciding for everyone outside the candidate's share.", max_length=64
        ),
        "candidateVersion": _str(
            "The version being rolled out (or just promoted / rolled back).", max_length=64
        ),
        "candidateWeight": _int("Percent of decisions the candidate takes now."),
        "observedGeneration": {"type": "integer"},
        "rollout": _obj(
            "The rollout's state; the operator resumes from it after a restart.",
            {
                "phase": {"type": "string"},
                "candidateVersion": {"type": "string"},
                "step": {"type": "integer"},
                "stepStartedAt": {"type": "string", "format": "date-time"},
                "lastAnalysisAt": {"type": "string", "format": "date-time"},
                "analysisPassed": {"type": "boolean"},
                "reason": {"type": "string"},
                "message": {"type": "string"},
            },
        ),
        "routing": _obj(
            "The routing table the gateway and the consumer read (same as the ConfigMap).",
            {
                "model_name": {"type": "string"},
                "salt": {"type": "string"},
                "variants": {"type": "array", "items": _ROUTING_VARIANT},
            },
        ),
        "inferenceServices": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The InferenceServices serving now, one per version.",
        },
        "conditions": _conditions(),
    },
)


# --------------------------------------------------------------------------- TrainingRun


def _column_names(description: str) -> dict[str, Any]:
    return {
        "type": "array",
        "description": description,
        "maxItems": MAX_EXTRA_FIELDS,
        "items": _str(
            "A column of the data file: 1 to 64 letters, digits and underscores, not starting with a digit "
            "(it becomes an API field, `extras.<name>`).",
            pattern=EXTRA_NAME_PATTERN,
            max_length=64,
        ),
        "x-kubernetes-list-type": "set",  # the API server refuses a name given twice
    }


_EXTRA_COLUMNS = _obj(
    "The bank's own columns of the data file to train on as extra model inputs (docs/extra-columns.md); the "
    "scorers then take the same fields in each transaction's `extras`.",
    {
        "numeric": _column_names("Columns used as numbers (`fraudops train --extra-numeric`)."),
        "categorical": _column_names(
            "Columns used as categories with learned codes (`fraudops train --extra-categorical`)."
        ),
    },
    rules=[
        _rule(
            "!has(self.numeric) || !has(self.categorical) || !self.numeric.exists(name, name in self.categorical)",
            "a column is numeric or categorical, not both: extraColumns.numeric and extraColumns.categorical "
            "must not share a name",
        ),
        _rule(
            "(has(self.numeric) ? size(self.numeric) : 0) + (has(self.categorical) ? size(self.categorical) : 0)"
            f" <= {MAX_EXTRA_FIELDS}",
            f"at most {MAX_EXTRA_FIELDS} extra columns in all (numeric and categorical): a transaction carries "
            "at most that many extras",
        ),
    ],
)

TRAINING_RUN_SPEC = _obj(
    "One training of a model version: data, tuning budget, where the artifact goes.",
    {
        "data": _obj(
            "The labelled history.",
            {
                "uri": _str(
                    "A .parquet or .csv file on a volume claim: pvc://<claim>/<path>.",
                    pattern=r"^pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/\S+$",
                    max_length=1024,
                ),
                "labelDelay": _duration(
                    "Time until a transaction's label is known (gap between windows).", "7d"
                ),
            },
            required=["uri"],
        ),
        "output": _obj(
            "Where the artifact is written: <uri>/<model>/<version>.",
            {
                "uri": _str(
                    "A folder on a volume claim: pvc://<claim>/<path>.",
                    pattern=r"^pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/\S*)?$",
                    max_length=1024,
                ),
            },
            required=["uri"],
        ),
        "model": _str(
            "Model name (registry key; default: fraudModelRef.name, else card-fraud).",
            pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
            max_length=63,
        ),
        "version": _str(
            "Version to produce (default: the TrainingRun's name).",
            pattern=VERSION_PATTERN,
            max_length=VERSION_MAX_LENGTH,
        ),
        "optuna": _obj(
            "Optuna's budget.",
            {
                "trials": _int("Trials.", default=30, minimum=1, maximum=10000),
                "timeout": _duration("Wall-clock budget of the tuning (it is interrupted after).", "10m"),
            },
            defaulted=True,
        ),
        "entityFeatures": _bool(
            "Train on the entity-risk features (`fraudops train --entity-features`). The FraudModel that "
            "receives the version gets features.entityFeatures, so the operator runs the entity-state "
            "component for it.",
            False,
        ),
        "extraColumns": _EXTRA_COLUMNS,
        "image": _str("Training image (runs `fraudops train`).", default=DEFAULT_APP_IMAGE, max_length=512),
        "resources": _resources(
            "Training container resources.",
            {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}},
        ),
        "fraudModelRef": _obj(
            "On success, the produced artifact becomes this FraudModel's candidate.",
            {
                "name": _str("FraudModel in the same namespace.", max_length=253),
            },
            required=["name"],
        ),
    },
    required=["data", "output"],
    rules=[
        _rule("self == oldSelf", "a TrainingRun's spec is immutable: create a new TrainingRun"),
    ],
)

TRAINING_RUN_STATUS = _obj(
    "The training Job's progress and outcome.",
    {
        "phase": _str("Pending, Running, Succeeded or Failed.", max_length=32),
        "jobName": {"type": "string"},
        "version": {"type": "string"},
        "artifactUri": {"type": "string"},
        "metrics": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "description": "Evaluation metrics reported by the training job.",
        },
        "message": {"type": "string"},
        "completionTime": {"type": "string", "format": "date-time"},
        "observedGeneration": {"type": "integer"},
        "conditions": _conditions(),
    },
)


# --------------------------------------------------------------------------- CRDs


def _crd(
    kind: str,
    plural: str,
    short: str,
    spec: dict[str, Any],
    status: dict[str, Any],
    columns: list[dict[str, Any]],
    root_rules: list[dict[str, str]],
    description: str,
) -> dict[str, Any]:
    root = {
        "type": "object",
        "description": description,
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        "required": ["spec"],
        "x-kubernetes-validations": root_rules,
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "fraudops"}},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["fraudops"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def _column(name: str, json_path: str, type_: str = "string") -> dict[str, Any]:
    return {"name": name, "type": type_, "jsonPath": json_path}


def fraud_model_crd() -> dict[str, Any]:
    return _crd(
        "FraudModel",
        "fraudmodels",
        "fm",
        FRAUD_MODEL_SPEC,
        FRAUD_MODEL_STATUS,
        [
            _column("Phase", ".status.phase"),
            _column("Stable", ".status.stableVersion"),
            _column("Canary", ".status.candidateVersion"),
            _column("Weight", ".status.candidateWeight", "integer"),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ],
        [
            _rule(
                f"size(self.metadata.name) <= {MODEL_NAME_MAX_LENGTH}",
                f"FraudModel names are at most {MODEL_NAME_MAX_LENGTH} characters: each version is served by an "
                "InferenceService named <name>-<version>, and KServe's names must stay within 63",
            )
        ],
        "A fraud model served by KServe, rolled out progressively, scoring a Kafka stream.",
    )


def training_run_crd() -> dict[str, Any]:
    return _crd(
        "TrainingRun",
        "trainingruns",
        "tr",
        TRAINING_RUN_SPEC,
        TRAINING_RUN_STATUS,
        [
            _column("Phase", ".status.phase"),
            _column("Version", ".status.version"),
            _column("Model", ".spec.fraudModelRef.name"),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ],
        [
            _rule(
                f"has(self.spec.version) || (size(self.metadata.name) <= {VERSION_MAX_LENGTH} && "
                f"self.metadata.name.matches('{VERSION_PATTERN}'))",
                f"set spec.version: the TrainingRun's name (the default version) is longer than "
                f"{VERSION_MAX_LENGTH} characters or not a valid version",
            )
        ],
        "One Optuna + XGBoost training of a model version, run as a Kubernetes Job.",
    )


def all_crds() -> dict[str, dict[str, Any]]:
    """File name → CRD, as written to `manifests/crds/`."""
    return {f"{GROUP}_fraudmodels.yaml": fraud_model_crd(), f"{GROUP}_trainingruns.yaml": training_run_crd()}


def render(crd: dict[str, Any]) -> str:
    header = "# Generated by `python -m fraudops_operator.crd` from operator/fraudops_operator/crd.py: do not edit.\n"
    return header + yaml.safe_dump(crd, sort_keys=False, width=100, allow_unicode=True)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Write (or --check) the fraudops CRDs in manifests/crds/.")
    parser.add_argument("--check", action="store_true", help="fail if the committed YAML differs")
    parser.add_argument("--out", type=Path, default=MANIFEST_DIR)
    args = parser.parse_args(argv)
    stale = []
    for file_name, crd in all_crds().items():
        path = args.out / file_name
        text = render(crd)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(path)
    if stale:
        print(f"stale CRD YAML: {', '.join(stale)}: run `python -m fraudops_operator.crd`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
