"""The children a FraudModel wants, as pure functions of its spec and rollout state (no API calls).

    InferenceService <model>-<version>   one per served version (KServe Standard mode, our predictor)
    ConfigMap        <model>-routing     the routing table (key routing.yaml), also in status.routing
    Deployment       <model>-entity-state  `fraudops stream entities`, only while a routed version was
                                         trained with the entity features (one replica, Recreate)
    Deployment       <model>-consumer    `fraudops stream consume`, reading the routing table
    ScaledObject     <model>-consumer    KEDA, on the consumer group's lag
    TriggerAuthentication <model>-consumer  KEDA's broker login (only with spec.stream.authentication)
    KafkaTopic       <model>-<topic>     Strimzi, the transactions topic

Each is a complete object for server-side apply; all are owned by the FraudModel (deleting it deletes them).
The consumer and the predictors trace like the operator does: its OTLP exporter and sampler settings
(`tracing_settings`) reach their containers, each with its own service name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import yaml

from fraudops.features.spec import DAY
from fraudops.routing import RoutingTable, TrainedFeatures, Variant, VariantMode
from fraudops_operator.resources import FraudModel, KafkaAuthentication, ModelVersion, Strategy
from fraudops_operator.rollout import Phase, RolloutState, candidate_weight, current_step

ROUTING_KEY = "routing.yaml"
ROUTING_MOUNT = "/etc/fraudops/routing"
PREDICTOR_PORT = 8080
CONSUMER_METRICS_PORT = 9102
CONSUMER_CONTAINER = "consumer"
ENTITY_STATE_METRICS_PORT = 9103
#: `app.kubernetes.io/name` of the entity-state component's Deployment and pods (fraudops-<component>)
ENTITY_STATE_COMPONENT = "entity-state"
MODEL_LABEL = "fraudops.io/model"
VERSION_LABEL = "fraudops.io/model-version"
MANAGED_BY = "fraudops-operator"
# What KServe's storage initializer can download (pvc:// is mounted instead of downloaded).
STORAGE_SCHEMES = ("s3", "gs", "pvc", "http", "https", "hdfs", "webhdfs", "hf")
#: The operator's OpenTelemetry settings its workloads inherit (the service name is each workload's own).
TRACING_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_SDK_DISABLED",
)


def inference_service_name(model: FraudModel, version: str) -> str:
    return f"{model.name}-{version.replace('.', '-')}"


def predictor_endpoint(model: FraudModel, version: str) -> str:
    """KServe Standard mode: the predictor's Service, serving V2 at /v2/models/<model name>/infer."""
    return f"http://{inference_service_name(model, version)}-predictor.{model.namespace}.svc.cluster.local"


def candidate_variant_name(model: FraudModel) -> str:
    return "canary" if model.rollout.strategy == Strategy.CANARY else "challenger"


def served_versions(model: FraudModel, state: RolloutState) -> list[ModelVersion]:
    """The versions that need an InferenceService in this state, stable first."""
    if model.stable is None:
        return []
    if model.candidate is None or state.candidate_version != model.candidate.version:
        return [model.stable]
    if state.phase == Phase.PROMOTED:
        return [model.candidate]
    if state.phase.active:
        return [model.stable, model.candidate]
    return [model.stable]


def stable_version(model: FraudModel, state: RolloutState) -> ModelVersion | None:
    """The version deciding outside the candidate's share (the candidate itself once promoted)."""
    served = served_versions(model, state)
    return served[0] if served else None


def routing_table(model: FraudModel, state: RolloutState) -> RoutingTable | None:
    """Who decides and who shadows, in the format the gateway and the consumer read (fraudops.routing)."""
    stable = stable_version(model, state)
    if stable is None:
        return None
    step = current_step(model, state)
    if step is None or model.candidate is None:
        return RoutingTable(
            model_name=model.name, salt=stable.version, variants=[_variant(model, "stable", stable)]
        )
    weight = candidate_weight(model, state)
    candidate = _variant(model, candidate_variant_name(model), model.candidate, step.mode, weight)
    stable_mode = VariantMode.AB if step.mode == VariantMode.AB else VariantMode.SERVE
    # Salted with the candidate's version: the same transactions (and customers) stay in the candidate's
    # share as it grows, and the next rollout draws a fresh sample.
    return RoutingTable(
        model_name=model.name,
        salt=model.candidate.version,
        variants=[_variant(model, "stable", stable, stable_mode, 100 - weight), candidate],
    )


def _variant(
    model: FraudModel,
    name: str,
    version: ModelVersion,
    mode: VariantMode = VariantMode.SERVE,
    weight: float = 100,
) -> Variant:
    return Variant(
        name=name,
        model_version=version.version,
        weight=weight,
        mode=mode,
        model_uri=None,
        endpoint=predictor_endpoint(model, version.version),
        # Only what differs from the defaults (which a scorer assumes for a variant the table says nothing
        # about): tables of models trained with the defaults stay readable by images from before the field.
        # Compared as the scorers compare them: without the entity features, the lag (0 when declared before
        # entityLagEpochs existed, 1 since) makes no difference.
        features=None if version.features.compared() == TrainedFeatures().compared() else version.features,
    )


def entity_table_features(table: RoutingTable | None) -> TrainedFeatures | None:
    """The settings of the routed versions trained with the entity features (the schema makes a stable and
    its candidate agree on them), which the entity-state component keeps its table with; None: no routed
    version needs the entity table."""
    variants = table.variants if table is not None else []
    return next((v.features for v in variants if v.features and v.features.entity_features), None)


def routing_document(table: RoutingTable) -> dict[str, Any]:
    return table.model_dump(mode="json", exclude_none=True)


def storage_problem(uri: str) -> str | None:
    """Why KServe could not fetch this artifact URI, or None."""
    scheme = uri.split("://", 1)[0]
    if scheme not in STORAGE_SCHEMES:
        return f"{uri}: scheme {scheme}:// is not one KServe's storage initializer reads ({', '.join(STORAGE_SCHEMES)})"
    return None


def volume_claim(uri: str) -> str | None:
    """The PersistentVolumeClaim a pvc://<claim>/<path> URI needs."""
    return uri[len("pvc://") :].split("/", 1)[0] if uri.startswith("pvc://") else None


# --------------------------------------------------------------------------- children


# The restricted Pod Security Standard, which the platform's namespace may enforce: non-root, no privilege
# escalation, no capabilities, the runtime's seccomp profile, a read-only root filesystem whose only
# scratch space is /tmp (the images keep HOME and every cache there).
POD_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
SCRATCH_VOLUME = {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}
SCRATCH_MOUNT = {"name": "tmp", "mountPath": "/tmp"}


def labels(model: FraudModel, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": f"fraudops-{component}",
        "app.kubernetes.io/instance": model.name,
        "app.kubernetes.io/part-of": "fraudops",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        MODEL_LABEL: model.name,
    }


def _metadata(model: FraudModel, name: str, component: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": model.namespace,
        "labels": labels(model, component),
        "ownerReferences": [model.ref.owner_reference()],
        **extra,
    }


def _threshold_env(model: FraudModel) -> list[dict[str, str]]:
    # Unset: every artifact decides at its own trained threshold.
    return [] if model.threshold is None else [{"name": "FRAUD_THRESHOLD", "value": str(model.threshold)}]


def tracing_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The tracing variables of `environ` (the operator's) that its workloads inherit."""
    return {name: environ[name] for name in TRACING_VARIABLES if environ.get(name)}


def _tracing_env(tracing: Mapping[str, str], service: str) -> list[dict[str, str]]:
    if not tracing:
        return []
    return [{"name": k, "value": v} for k, v in tracing.items()] + [
        {"name": "OTEL_SERVICE_NAME", "value": service}
    ]


def desired_inference_service(
    model: FraudModel, version: ModelVersion, tracing: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The InferenceService that serves one model version (KServe v1beta1, Standard mode)."""
    metadata = _metadata(
        model,
        inference_service_name(model, version.version),
        "predictor",
        annotations={
            # "Standard" is KServe ≥ 0.16's name for raw Deployments (no Knative); "RawDeployment" is deprecated.
            "serving.kserve.io/deploymentMode": "Standard",
            # The predictor serves /metrics on its own port. KServe's "enable-prometheus-scraping" would
            # annotate the pods with port 9091 (its queue-proxy default) and no prometheus.io/scrape, so
            # Prometheus never scraped them and the rollout analysis had no latency or score data. KServe
            # copies these annotations to the predictor pods.
            "serving.kserve.io/enable-prometheus-scraping": "false",
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(PREDICTOR_PORT),
            "prometheus.io/path": "/metrics",
        },
    )
    metadata["labels"][VERSION_LABEL] = version.version
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {
            "predictor": {
                "minReplicas": model.predictor.min_replicas,
                "maxReplicas": model.predictor.max_replicas,
                "labels": {MODEL_LABEL: model.name, VERSION_LABEL: version.version},
                "containers": [
                    {
                        "name": "kserve-container",
                        "image": model.predictor.image,
                        "command": ["python", "-m", "fraudops_predictor"],
                        "args": [
                            "--model_name",
                            model.name,
                            "--model_dir",
                            "/mnt/models",
                            "--http_port",
                            str(PREDICTOR_PORT),
                            # Checked against the artifact at load: a mismatch stops the predictor with
                            # the difference, before the consumer computes features the model was not
                            # trained on.
                            "--trained_features",
                            version.features.model_dump_json(),
                        ],
                        # That refusal (or any crash at load) shows in `kubectl describe pod`.
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        # STORAGE_URI on a custom container makes KServe inject its storage initializer,
                        # which puts the artifact at /mnt/models.
                        "env": [
                            {"name": "STORAGE_URI", "value": version.model_uri},
                            {"name": "LOG_FORMAT", "value": "json"},
                            *_threshold_env(model),
                            *_tracing_env(tracing or {}, "fraudops-predictor"),
                        ],
                        "ports": [{"containerPort": PREDICTOR_PORT, "protocol": "TCP"}],
                        "readinessProbe": {
                            "httpGet": {"path": f"/v2/models/{model.name}/ready", "port": PREDICTOR_PORT},
                            "initialDelaySeconds": 5,
                            "periodSeconds": 10,
                        },
                        "resources": dict(model.predictor.resources),
                        "securityContext": CONTAINER_SECURITY_CONTEXT,
                        "volumeMounts": [SCRATCH_MOUNT],
                    }
                ],
                "securityContext": POD_SECURITY_CONTEXT,
                "volumes": [SCRATCH_VOLUME],
            }
        },
    }


def desired_routing_config_map(model: FraudModel, table: RoutingTable) -> dict[str, Any]:
    text = yaml.safe_dump(routing_document(table), sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(model, f"{model.name}-routing", "routing"),
        "data": {ROUTING_KEY: text},
    }


def desired_consumer_deployment(
    model: FraudModel, table: RoutingTable, tracing: Mapping[str, str] | None = None
) -> dict[str, Any]:
    stream = model.stream
    selector = _selector(model, "consumer")
    env = [
        _secret_env("DB_URL", stream.database_secret_name, stream.database_secret_key),
        {"name": "KAFKA_BOOTSTRAP_SERVERS", "value": stream.bootstrap_servers},
        {"name": "TRANSACTIONS_TOPIC", "value": stream.topic},
        {"name": "ALERTS_TOPIC", "value": stream.alerts_topic},
        {"name": "DLQ_TOPIC", "value": stream.dlq_topic},
        {"name": "TRANSACTIONS_PARTITIONS", "value": str(stream.partitions)},
        {"name": "CONSUMER_GROUP", "value": stream.consumer_group},
        {"name": "ROUTING_TABLE_PATH", "value": f"{ROUTING_MOUNT}/{ROUTING_KEY}"},
        {"name": "BATCH_SIZE", "value": str(stream.batch_size)},
        {"name": "LOG_FORMAT", "value": "json"},
        *_threshold_env(model),
        *kafka_authentication_env(stream.authentication),
        *_tracing_env(tracing or {}, "fraudops-stream"),
    ]
    if entity_table_features(table) is not None:
        # The consumer waits for the entity-state component's table at each record's epoch.
        env.append({"name": "ENTITY_TABLE", "value": "true"})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(model, f"{model.name}-consumer", "consumer"),
        # No `replicas`: KEDA owns the count, and applying one would fight it.
        "spec": {
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": {**labels(model, "consumer"), **selector},
                    "annotations": {
                        # The consumer reads the table at start: a new table rolls the pods.
                        "fraudops.io/routing-checksum": _checksum(routing_document(table)),
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(CONSUMER_METRICS_PORT),
                    },
                },
                "spec": {
                    # SIGTERM makes the consumer finish its batch, commit and checkpoint its state.
                    "terminationGracePeriodSeconds": 60,
                    "containers": [
                        {
                            "name": CONSUMER_CONTAINER,
                            "image": stream.image,
                            "command": [
                                "fraudops",
                                "stream",
                                "consume",
                                "--metrics-port",
                                str(CONSUMER_METRICS_PORT),
                            ],
                            "env": env,
                            "ports": [
                                {"name": "metrics", "containerPort": CONSUMER_METRICS_PORT, "protocol": "TCP"}
                            ],
                            "readinessProbe": {
                                "httpGet": {"path": "/metrics", "port": CONSUMER_METRICS_PORT},
                                "periodSeconds": 10,
                            },
                            "resources": dict(stream.resources),
                            "volumeMounts": [
                                {"name": "routing", "mountPath": ROUTING_MOUNT, "readOnly": True},
                                SCRATCH_MOUNT,
                            ],
                            "securityContext": CONTAINER_SECURITY_CONTEXT,
                        }
                    ],
                    "securityContext": POD_SECURITY_CONTEXT,
                    "volumes": [
                        {"name": "routing", "configMap": {"name": f"{model.name}-routing"}},
                        SCRATCH_VOLUME,
                    ],
                },
            },
        },
    }


def exact_number(value: float) -> str:
    """`value` as the shortest text that reads back as exactly the same float ("7", "0.4166666666666667"):
    the component and the training Job record what they read, and it must equal what the scorers use."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def _selector(model: FraudModel, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": f"fraudops-{component}", "app.kubernetes.io/instance": model.name}


def entity_state_name(model: FraudModel) -> str:
    return f"{model.name}-{ENTITY_STATE_COMPONENT}"


def desired_entity_state_deployment(model: FraudModel, features: TrainedFeatures) -> dict[str, Any]:
    """`fraudops stream entities` for the model's topic, keeping the entity table with the settings the
    routed versions were trained with (`entity_table_features`).

    Exactly one instance may own a topic's table: two would each publish their own epochs and positions
    over the other's. Hence one replica and the Recreate strategy (the old pod is gone before the new one
    starts: no surge in a rollout); the component itself takes a PostgreSQL advisory lock on the topic's
    table, so a second instance that still appears (a pod on a partitioned node the cluster has given up
    on, a run by hand) waits instead of writing."""
    stream, state = model.stream, model.stream.entity_state
    selector = _selector(model, ENTITY_STATE_COMPONENT)
    env = [
        _secret_env("DB_URL", stream.database_secret_name, stream.database_secret_key),
        {"name": "KAFKA_BOOTSTRAP_SERVERS", "value": stream.bootstrap_servers},
        {"name": "TRANSACTIONS_TOPIC", "value": stream.topic},
        # Its own client group id derives from it (`<group>-entity-state`, never joined: it assigns every
        # partition itself and keeps its offsets in the database).
        {"name": "CONSUMER_GROUP", "value": stream.consumer_group},
        {"name": "LOG_FORMAT", "value": "json"},
        *kafka_authentication_env(stream.authentication),
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(model, entity_state_name(model), ENTITY_STATE_COMPONENT),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": {**labels(model, ENTITY_STATE_COMPONENT), **selector},
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(ENTITY_STATE_METRICS_PORT),
                    },
                },
                "spec": {
                    # SIGTERM ends the loop after the current round; everything published is durable.
                    "terminationGracePeriodSeconds": 30,
                    "containers": [
                        {
                            "name": ENTITY_STATE_COMPONENT,
                            "image": stream.image,
                            "command": [
                                "fraudops",
                                "stream",
                                "entities",
                                "--metrics-port",
                                str(ENTITY_STATE_METRICS_PORT),
                                "--label-delay-days",
                                exact_number(features.label_delay_s / DAY),
                                "--epoch-seconds",
                                exact_number(features.entity_epoch_s),
                                "--snapshot-every",
                                str(state.snapshot_every_epochs),
                                "--retain-epochs",
                                str(state.retain_epochs),
                            ],
                            "env": env,
                            "ports": [
                                {
                                    "name": "metrics",
                                    "containerPort": ENTITY_STATE_METRICS_PORT,
                                    "protocol": "TCP",
                                }
                            ],
                            # Alive while it makes progress or waits for the table another instance
                            # holds; restarted after PostgreSQL or Kafka has been silent for longer than
                            # its --outage-limit (120 s). Ready once it holds the table and has published
                            # up to the end of its input (docs/entity-features.md, "Health").
                            "livenessProbe": {
                                "httpGet": {"path": "/livez", "port": ENTITY_STATE_METRICS_PORT},
                                "periodSeconds": 10,
                                "failureThreshold": 3,
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/readyz", "port": ENTITY_STATE_METRICS_PORT},
                                "periodSeconds": 10,
                            },
                            # A refusal at start (a table kept with other settings) shows in `kubectl describe`.
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                            "resources": dict(state.resources),
                            "volumeMounts": [SCRATCH_MOUNT],
                            "securityContext": CONTAINER_SECURITY_CONTEXT,
                        }
                    ],
                    "securityContext": POD_SECURITY_CONTEXT,
                    "volumes": [SCRATCH_VOLUME],
                },
            },
        },
    }


def kafka_authentication_env(authentication: KafkaAuthentication | None) -> list[dict[str, Any]]:
    """The consumer's broker login (fraudops.kafka reads it): secrets by reference, never by value."""
    if authentication is None:
        return []
    env: list[dict[str, Any]] = [
        {"name": "KAFKA_SECURITY_PROTOCOL", "value": authentication.security_protocol},
        {"name": "KAFKA_SASL_MECHANISM", "value": "SCRAM-SHA-512"},
        {"name": "KAFKA_SASL_USERNAME", "value": authentication.kafka_user},
        _secret_env("KAFKA_SASL_PASSWORD", authentication.password.name, authentication.password.key),
    ]
    if authentication.ca is not None:
        env.append(_secret_env("KAFKA_SSL_CA_PEM", authentication.ca.name, authentication.ca.key))
    return env


def _secret_env(variable: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def desired_trigger_authentication(model: FraudModel) -> dict[str, Any] | None:
    """KEDA's login for the lag checks: the consumer's own (user name from its container's environment,
    password and CA from the same Secrets), so the two can never disagree."""
    authentication = model.stream.authentication
    if authentication is None:
        return None
    secrets = [
        {"parameter": "password", "name": authentication.password.name, "key": authentication.password.key}
    ]
    if authentication.ca is not None:
        secrets.append({"parameter": "ca", "name": authentication.ca.name, "key": authentication.ca.key})
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": _metadata(model, f"{model.name}-consumer", "consumer"),
        "spec": {
            "env": [
                {"parameter": "username", "name": "KAFKA_SASL_USERNAME", "containerName": CONSUMER_CONTAINER}
            ],
            "secretTargetRef": secrets,
        },
    }


def desired_scaled_object(model: FraudModel) -> dict[str, Any]:
    stream = model.stream
    trigger: dict[str, Any] = {
        "type": "kafka",
        "metadata": {
            "bootstrapServers": stream.bootstrap_servers,
            "consumerGroup": stream.consumer_group,
            "topic": stream.topic,
            "lagThreshold": str(stream.lag_threshold),
            "offsetResetPolicy": "earliest",
        },
    }
    if stream.authentication is not None:
        # KEDA 2.x reads `sasl` and `tls` from the trigger's metadata, the secrets from the TriggerAuthentication.
        trigger["metadata"]["sasl"] = "scram_sha512"
        trigger["metadata"]["tls"] = "enable" if stream.authentication.ca is not None else "disable"
        trigger["authenticationRef"] = {"name": f"{model.name}-consumer"}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _metadata(model, f"{model.name}-consumer", "consumer"),
        "spec": {
            "scaleTargetRef": {"name": f"{model.name}-consumer"},
            "minReplicaCount": stream.min_replicas,
            "maxReplicaCount": stream.max_replicas,  # ≤ partitions: the CRD's CEL rule
            "pollingInterval": 15,
            "cooldownPeriod": 120,
            "triggers": [trigger],
        },
    }


def desired_kafka_topic(model: FraudModel) -> dict[str, Any]:
    stream = model.stream
    metadata = _metadata(
        model, f"{model.name}-{stream.topic.lower().replace('_', '-').replace('.', '-')}", "stream"
    )
    metadata["labels"]["strimzi.io/cluster"] = stream.kafka_cluster
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": metadata,
        "spec": {
            "topicName": stream.topic,
            "partitions": stream.partitions,
            "replicas": stream.replication_factor,
        },
    }


def desired_children(
    model: FraudModel, state: RolloutState, tracing: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every child, in apply order: a version's InferenceService exists before the table routes to it.
    `tracing`: the OpenTelemetry variables the workloads inherit (`tracing_settings`)."""
    table = routing_table(model, state)
    children = [desired_kafka_topic(model)]
    children += [
        desired_inference_service(model, version, tracing) for version in served_versions(model, state)
    ]
    if table is not None:
        children.append(desired_routing_config_map(model, table))
        entity_features = entity_table_features(table)
        if entity_features is not None:  # before the consumer that waits for its table
            children.append(desired_entity_state_deployment(model, entity_features))
        children.append(desired_consumer_deployment(model, table, tracing))
        trigger_authentication = desired_trigger_authentication(model)
        if trigger_authentication is not None:  # before the ScaledObject that refers to it
            children.append(trigger_authentication)
        children.append(desired_scaled_object(model))
    return children


def fingerprint(children: list[dict[str, Any]]) -> str:
    return _checksum(children)


def _checksum(document: Any) -> str:
    return hashlib.sha256(yaml.safe_dump(document, sort_keys=True).encode()).hexdigest()[:16]
