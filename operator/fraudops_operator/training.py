"""A TrainingRun as pure functions: the Job it wants, the outcome read back, and the FraudModel change it makes.

The training container writes its result as JSON to /dev/termination-log, which the kubelet copies into
the pod's `status.containerStatuses[].state.terminated.message`. The Job's own conditions (Complete /
Failed) say whether it worked; the pod's message adds the metrics. Where the artifact lands is not read
back at all: the operator chose it (`<output>/<model>/<version>`), so a lost message loses no model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fraudops.features.spec import DAY
from fraudops.routing import TrainedFeatures
from fraudops_operator.desired import (
    CONTAINER_SECURITY_CONTEXT,
    MANAGED_BY,
    POD_SECURITY_CONTEXT,
    SCRATCH_MOUNT,
    SCRATCH_VOLUME,
    exact_number,
    volume_claim,
)
from fraudops_operator.resources import ModelVersion, TrainingRun, version_spec
from fraudops_operator.status import set_condition

CONTAINER = "train"
DATA_MOUNT = "/mnt/data"
OUTPUT_MOUNT = "/mnt/output"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def job_name(run: TrainingRun) -> str:
    return f"{run.ref.name[:57]}-train"


def artifact_uri(run: TrainingRun) -> str:
    return f"{run.output_uri.rstrip('/')}/{run.model_name}/{run.version}"


def _mounted_path(uri: str, mount: str) -> str:
    """pvc://<claim>/<path> → <mount>/<path>."""
    path = uri[len("pvc://") :].split("/", 1)[1] if "/" in uri[len("pvc://") :] else ""
    return f"{mount}/{path}".rstrip("/")


def desired_training_job(run: TrainingRun) -> dict[str, Any]:
    """The batch/v1 Job that runs `fraudops train` for this TrainingRun."""
    env = {
        "FRAUDOPS_TRAIN_DATA": _mounted_path(run.data_uri, DATA_MOUNT),
        "FRAUDOPS_TRAIN_OUTPUT": _mounted_path(run.output_uri, OUTPUT_MOUNT),
        "FRAUDOPS_TRAIN_NAME": run.model_name,
        "FRAUDOPS_TRAIN_VERSION": run.version,
        "FRAUDOPS_TRAIN_TRIALS": str(run.trials),
        "FRAUDOPS_TRAIN_TIMEOUT": f"{run.timeout_s:g}",
        # Exactly: the artifact records what training read, and the hand-over declares it (trained_features).
        "FRAUDOPS_TRAIN_LABEL_DELAY_DAYS": exact_number(run.label_delay_days),
        "FRAUDOPS_TRAIN_ENTITY_FEATURES": "true" if run.entity_features else "false",
        "FRAUDOPS_TRAIN_RESULT_FILE": "/tmp/fraudops-train-result.json",
        "LOG_FORMAT": "json",
    }
    # Only when given: the API server drops an empty value, which would leave a bare name in the Job.
    if run.extra_numeric:
        env["FRAUDOPS_TRAIN_EXTRA_NUMERIC"] = ",".join(run.extra_numeric)
    if run.extra_categorical:
        env["FRAUDOPS_TRAIN_EXTRA_CATEGORICAL"] = ",".join(run.extra_categorical)
    labels = {
        "app.kubernetes.io/name": "fraudops-training",
        "app.kubernetes.io/instance": run.ref.name,
        "app.kubernetes.io/part-of": "fraudops",
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(run),
            "namespace": run.ref.namespace,
            "labels": labels,
            "ownerReferences": [run.ref.owner_reference()],
        },
        "spec": {
            "backoffLimit": 0,  # a failed training is a result to read, not a blip to retry
            # Tuning stops at its timeout, but loading, the final fit and the report come on top;
            # a hung run must still end.
            "activeDeadlineSeconds": int(run.timeout_s * 2 + 3600),
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": CONTAINER,
                            "image": run.image,
                            "command": ["fraudops", "train"],
                            "env": [{"name": k, "value": v} for k, v in env.items()],
                            "resources": dict(run.resources),
                            # A crash before the result is written still leaves its log tail as the message.
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                            "volumeMounts": [
                                {"name": "data", "mountPath": DATA_MOUNT, "readOnly": True},
                                {"name": "output", "mountPath": OUTPUT_MOUNT},
                                SCRATCH_MOUNT,
                            ],
                            "securityContext": CONTAINER_SECURITY_CONTEXT,
                        }
                    ],
                    "securityContext": POD_SECURITY_CONTEXT,
                    "volumes": [
                        {
                            "name": "data",
                            "persistentVolumeClaim": {
                                "claimName": volume_claim(run.data_uri),
                                "readOnly": True,
                            },
                        },
                        {
                            "name": "output",
                            "persistentVolumeClaim": {"claimName": volume_claim(run.output_uri)},
                        },
                        SCRATCH_VOLUME,
                    ],
                },
            },
        },
    }


@dataclass(frozen=True)
class TrainingOutcome:
    phase: str  # Pending | Running | Succeeded | Failed
    message: str = ""
    metrics: Mapping[str, Any] = field(default_factory=dict)
    completion_time: str | None = None

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")


def job_finished(job: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def training_outcome(job: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]]) -> TrainingOutcome:
    """What the Job's status (and its pod's termination message, when there is one) say happened."""
    if job is None:
        return TrainingOutcome("Pending", "the training Job is being created")
    status = job.get("status") or {}
    conditions = {c["type"]: c for c in status.get("conditions") or [] if c.get("status") == "True"}
    result = _termination_result(pods)
    if "Complete" in conditions:
        metrics = result.get("metrics") or {}
        message = (
            "training succeeded"
            if metrics
            else "training succeeded (no result in the pod's termination message, so no metrics)"
        )
        return TrainingOutcome("Succeeded", message, metrics, status.get("completionTime"))
    if "Failed" in conditions:
        failed = conditions["Failed"]
        why = result.get("message") or failed.get("message") or failed.get("reason") or "no reason given"
        return TrainingOutcome("Failed", f"training failed: {why}", {}, failed.get("lastTransitionTime"))
    if status.get("active") or status.get("startTime"):
        return TrainingOutcome("Running", "training is running")
    return TrainingOutcome("Pending", "the training pod is waiting to start")


def training_run_status(
    run: TrainingRun, outcome: TrainingOutcome, previous: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """The TrainingRun's status for this outcome (the FraudModelUpdated condition is the handler's)."""
    succeeded = {"Succeeded": "True", "Failed": "False"}.get(outcome.phase, "Unknown")
    status: dict[str, Any] = {
        "phase": outcome.phase,
        "jobName": job_name(run),
        "version": run.version,
        "message": outcome.message,
        "observedGeneration": run.ref.generation,
        "conditions": set_condition(
            previous.get("conditions") or [],
            "Succeeded",
            succeeded,
            outcome.phase,
            outcome.message,
            now,
            run.ref.generation,
        ),
    }
    if outcome.finished:
        status["metrics"] = dict(outcome.metrics)
        if outcome.completion_time:
            status["completionTime"] = outcome.completion_time
    if outcome.phase == "Succeeded":
        status["artifactUri"] = artifact_uri(run)
    return status


def _termination_result(pods: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The JSON the training container left in its termination message (newest pod first), or {}."""
    for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True):
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated") or {}
            if container.get("name") == CONTAINER and terminated.get("message"):
                try:
                    result = json.loads(terminated["message"])
                except ValueError:
                    return {"message": terminated["message"][-500:]}  # FallbackToLogsOnError: a log tail
                return result if isinstance(result, dict) else {}
    return {}


def trained_features(run: TrainingRun) -> TrainedFeatures:
    """What the run's Job trains with: the operator chose it, as it chose where the artifact lands (the
    entity epoch and the entity lag are training's defaults, 60 s and 1: `fraudops train` has no option for
    them, and the artifact records them in its feature_config)."""
    return TrainedFeatures(entity_features=run.entity_features, label_delay_s=run.label_delay_days * DAY)


def fraud_model_change(run: TrainingRun, fraud_model: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch that makes the new artifact the FraudModel's candidate (None: already done).

    A FraudModel without any version gets it as its stable. A candidate that was promoted becomes the
    stable first, so the new candidate rolls out against what actually serves. Versions are written with
    their `features` in full and bound to them (`forVersion`): a merge patch keeps what it does not name.
    """
    new = version_spec(ModelVersion(run.version, artifact_uri(run), trained_features(run)))
    spec = fraud_model.get("spec") or {}
    stable, candidate = spec.get("stable"), spec.get("candidate")
    if any(v and v.get("version") == run.version for v in (stable, candidate)):
        return None
    if stable is None:
        return {"spec": {"stable": new}}
    patch: dict[str, Any] = {"spec": {"candidate": new, "rollout": {"promote": False, "abort": False}}}
    rollout = (fraud_model.get("status") or {}).get("rollout") or {}
    promoted = ModelVersion.from_spec(candidate)
    if (
        promoted is not None
        and rollout.get("phase") == "Promoted"
        and rollout.get("candidateVersion") == promoted.version
    ):
        # Re-written rather than copied: a candidate stored before `forVersion` existed gets it now.
        patch["spec"]["stable"] = version_spec(promoted)
    return patch
