"""Thin Kopf wiring: every tick, read the object, ask the pure parts what to do, apply it, record it.

FraudModel:  read → analysis (if due) → next rollout state → desired children → server-side apply →
             retire InferenceServices no longer served → status (only if it changed) → Events.
TrainingRun: read → Job (created once) → outcome from the Job and its pod → status → FraudModel candidate.

Both are level-based: everything is recomputed from the object as it is now (state lives in its status),
so a restarted operator carries on where the last one stopped, and an unchanged object costs no write.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import UTC, datetime
from typing import Any, cast

import kopf
import prometheus_client
from kubernetes.client.exceptions import ApiException

from fraudops.tracing import traced
from fraudops_operator import crd, metrics
from fraudops_operator.analysis import VariantQuery, Verdict, analyse
from fraudops_operator.desired import (
    ENTITY_STATE_COMPONENT,
    MODEL_LABEL,
    candidate_variant_name,
    desired_children,
    entity_state_name,
    entity_table_features,
    fingerprint,
    inference_service_name,
    routing_table,
    storage_problem,
    tracing_settings,
    volume_claim,
)
from fraudops_operator.kube import ConflictError, KindNotServedError, Kube, load_configuration
from fraudops_operator.metrics import counted
from fraudops_operator.resources import FraudModel, TrainingRun
from fraudops_operator.rollout import (
    Phase,
    RolloutEvent,
    RolloutState,
    Transition,
    analysis_due,
    candidate_weight,
    next_state,
)
from fraudops_operator.settings import OperatorSettings
from fraudops_operator.status import Readiness, entity_state_readiness, fraud_model_status, set_condition
from fraudops_operator.training import (
    JOB_NAME_LABEL,
    artifact_uri,
    desired_training_job,
    fraud_model_change,
    job_finished,
    job_name,
    training_outcome,
    training_run_status,
)

SETTINGS = OperatorSettings()


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """Kopf's credentials come from the same place as our client's (exec plugins and tokens included)."""
    config = load_configuration()
    header = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix("authorization")
    scheme, _space, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
    )


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Kopf turns log lines at or above this level into Events; ours are the decisions, posted explicitly.
    settings.posting.level = logging.WARNING
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per PromQL query is noise
    memo.kube = Kube.from_environment()
    # the rollout metrics and the process's own (CPU, memory, GC), for the ServiceMonitor
    if SETTINGS.metrics_port:
        prometheus_client.start_http_server(SETTINGS.metrics_port)


# --------------------------------------------------------------------------- FraudModel


@kopf.timer(crd.GROUP, crd.VERSION, "fraudmodels", interval=SETTINGS.tick_s)
@counted("FraudModel")
def reconcile_fraud_model(name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    assert namespace is not None  # FraudModels are namespaced
    attributes = {"k8s.namespace.name": namespace, "fraudops.fraudmodel": name}
    with traced("reconcile FraudModel", __name__, attributes=attributes) as span:
        phase = _reconcile_fraud_model(name, namespace, memo)
        if span is not None and phase is not None:
            span.set_attribute("fraudops.rollout.phase", phase)


# A watching handler, not @kopf.on.delete: a changing handler would make Kopf write its diff-base annotation
# onto every FraudModel on every spec change, and it needs no finalizer to hear that the object is gone.
@kopf.on.event(crd.GROUP, crd.VERSION, "fraudmodels")
def forget_deleted_fraud_model(type: str, name: str, namespace: str | None, **_: Any) -> None:
    """A deleted FraudModel's rollout gauges go with it."""
    if type == "DELETED" and namespace is not None:
        metrics.forget(namespace, name)


def _reconcile_fraud_model(name: str, namespace: str, memo: kopf.Memo) -> str | None:
    """One tick; the rollout phase it leaves (None when the object is gone or blocked)."""
    kube: Kube = memo.kube
    body = kube.get("FraudModel", namespace, name)  # fresh: our last status write may not have arrived yet
    if body is None or body["metadata"].get("deletionTimestamp"):
        metrics.forget(namespace, name)
        return None
    model, status, now = FraudModel.from_body(body), body.get("status") or {}, datetime.now(UTC)

    blocked = _blocked(kube, model)
    if blocked is not None:  # nothing is applied for it: say why, once
        if _write_status(kube, body, _with_ready(status, model, blocked, now)):
            _warn_once(body, status, blocked)
        return None

    transition, verdict = _decide(model, status, now)
    readiness = _apply_children(kube, memo, model, transition.state)
    if not readiness.ready:  # what could not be applied did not happen: hold the last state
        transition, verdict = Transition(_held(model, status, now)), None
    state = transition.state
    entity_state = _entity_state(kube, model, state)
    new_status = fraud_model_status(model, state, readiness, status, verdict, now, entity_state)
    if _write_status(kube, body, new_status):
        for event in transition.events:
            _post(body, event)
        if not readiness.ready:
            _warn_once(body, status, readiness)
        previous = RolloutState.from_status(status.get("rollout"))
        metrics.observe_transition(namespace, name, previous.phase if previous else None, state)
        if verdict is not None:
            metrics.observe_verdict(namespace, name, verdict)
    metrics.observe_state(namespace, name, state, candidate_weight(model, state))
    return state.phase.value


def _decide(model: FraudModel, status: dict[str, Any], now: datetime) -> tuple[Transition, Verdict | None]:
    """The rollout's next state, analysing first if a step is due. The rollout only moves while every child
    is in place (a candidate without its InferenceService must not get traffic)."""
    previous = RolloutState.from_status(status.get("rollout"))
    if previous is None or not _was_ready(status):
        return Transition(_held(model, status, now)), None
    verdict = _analyse(model) if analysis_due(model, previous, now) else None
    return next_state(model, previous, now, verdict), verdict


def _held(model: FraudModel, status: dict[str, Any], now: datetime) -> RolloutState:
    """The last recorded state; for a new model, its versions without any rollout."""
    without_candidate = FraudModel(
        model.ref, model.threshold, model.stable, None, model.rollout, model.predictor, model.stream
    )
    return RolloutState.from_status(status.get("rollout")) or next_state(without_candidate, None, now).state


def _post(obj: dict[str, Any], event: RolloutEvent) -> None:
    """An Event on `obj` (Kopf posts it in the background and retries)."""
    kopf.event(cast(kopf.Body, obj), type=event.type, reason=event.reason, message=event.message)


def _warn_once(body: dict[str, Any], status: dict[str, Any], readiness: Readiness) -> None:
    """A Warning Event when the model stops being ready (or for a new reason), not on every tick."""
    if _condition(status, "Ready").get("message") != readiness.message:
        _post(body, RolloutEvent("Warning", readiness.reason, readiness.message))


def _analyse(model: FraudModel) -> Verdict:
    assert model.stable is not None and model.candidate is not None

    def who(variant: str, version: str) -> VariantQuery:
        return VariantQuery(
            variant=variant,
            version=version,
            model=model.name,
            namespace=model.namespace,
            inferenceservice=inference_service_name(model, version),
        )

    return analyse(
        model.rollout.analysis,
        who(candidate_variant_name(model), model.candidate.version),
        who("stable", model.stable.version),
    )


def _apply_children(kube: Kube, memo: kopf.Memo, model: FraudModel, state: RolloutState) -> Readiness:
    """Server-side apply every child, unless exactly these were applied recently; then retire old versions."""
    children = desired_children(model, state, tracing_settings(os.environ))
    applied = ", ".join(f"{c['kind']} {c['metadata']['name']}" for c in children)
    key = fingerprint(children)
    last = memo.get("applied")
    if last is not None and last[0] == key and time.monotonic() - last[1] < SETTINGS.resync_s:
        return Readiness(True, "Reconciled", f"applied {applied}")
    missing: list[str] = []
    rejected: list[str] = []
    for child in children:
        what = f"{child['kind']} {child['metadata']['name']}"
        try:
            kube.apply(child)
        except KindNotServedError as exc:
            if str(exc) not in missing:
                missing.append(str(exc))
        except ApiException as exc:
            if exc.status is None or not 400 <= exc.status < 500 or exc.status in (409, 429):
                raise kopf.TemporaryError(
                    f"applying {what}: {exc.status} {exc.reason}", delay=SETTINGS.tick_s
                ) from exc
            rejected.append(f"{what} rejected by the API server: {_api_message(exc)}")
    if missing or rejected:
        memo.pop("applied", None)
        reason = "DependencyMissing" if missing else "ApplyRejected"
        return Readiness(False, reason, "; ".join(missing + rejected))
    _retire_children(kube, model, children)
    memo["applied"] = (key, time.monotonic())
    return Readiness(True, "Reconciled", f"applied {applied}")


def _entity_state(kube: Kube, model: FraudModel, state: RolloutState) -> Readiness | None:
    """The entity-state component's readiness, while the routed versions need one (None: they do not)."""
    if entity_table_features(routing_table(model, state)) is None:
        return None
    name = entity_state_name(model)
    return entity_state_readiness(name, kube.get("Deployment", model.namespace, name))


#: Children that come and go while the model lives, by kind and (where the kind has lasting children too)
#: component: old versions' InferenceServices, KEDA's broker login once `spec.stream.authentication` is
#: removed, and the entity-state component once no routed version needs it. (The others live as long as
#: the model.)
_TRANSIENT_CHILDREN = (
    ("InferenceService", None),
    ("TriggerAuthentication", None),
    ("Deployment", ENTITY_STATE_COMPONENT),
)


def _retire_children(kube: Kube, model: FraudModel, children: list[dict[str, Any]]) -> None:
    """Delete the model's own transient children that it no longer wants."""
    for kind, component in _TRANSIENT_CHILDREN:
        keep = {c["metadata"]["name"] for c in children if c["kind"] == kind}
        selector = f"{MODEL_LABEL}={model.name}"
        if component is not None:
            selector += f",app.kubernetes.io/name=fraudops-{component}"
        try:
            owned = kube.list_objects(kind, model.namespace, selector)
        except KindNotServedError:
            continue  # nothing of that kind can exist (e.g. KEDA not installed)
        for obj in owned:
            owners = {ref.get("uid") for ref in obj["metadata"].get("ownerReferences", [])}
            if model.ref.uid in owners and obj["metadata"]["name"] not in keep:
                kube.delete(kind, model.namespace, obj["metadata"]["name"])


def _blocked(kube: Kube, model: FraudModel) -> Readiness | None:
    """Why none of the model's children may be applied: an image outside the allow-list, an unreadable
    artifact; None when they may."""
    refusal = SETTINGS.image_policy.refusal(
        {"predictor": model.predictor.image, "consumer": model.stream.image}
    )
    if refusal:
        return Readiness(False, "ImageNotAllowed", refusal)
    problem = _artifact_problem(kube, model)
    return Readiness(False, "ArtifactUnreadable", problem) if problem else None


def _artifact_problem(kube: Kube, model: FraudModel) -> str | None:
    """Why a version's artifact cannot be served (unsupported scheme, missing volume claim), or None."""
    for role, version in (("stable", model.stable), ("candidate", model.candidate)):
        if version is None:
            continue
        problem = storage_problem(version.model_uri)
        claim = volume_claim(version.model_uri)
        if problem is None and claim and kube.get("PersistentVolumeClaim", model.namespace, claim) is None:
            problem = (
                f"{version.model_uri}: PersistentVolumeClaim {claim} not found in namespace {model.namespace}"
            )
        if problem:
            return f"{role} {version.version}: {problem}"
    return None


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), {})


def _was_ready(status: dict[str, Any]) -> bool:
    return _condition(status, "Ready").get("status") == "True"


def _with_ready(
    status: dict[str, Any], model: FraudModel, readiness: Readiness, now: datetime
) -> dict[str, Any]:
    conditions = set_condition(
        status.get("conditions") or [],
        "Ready",
        "False",
        readiness.reason,
        readiness.message,
        now,
        model.ref.generation,
    )
    return {
        **status,
        "phase": status.get("phase", Phase.PENDING.value),
        "conditions": conditions,
        "observedGeneration": model.ref.generation,
    }


def _write_status(kube: Kube, body: dict[str, Any], new_status: dict[str, Any]) -> bool:
    """Replace the status if it changed (with the read's resourceVersion); False if nothing was written."""
    if new_status == (body.get("status") or {}):
        return False
    try:
        kube.replace_status({**body, "status": new_status})
    except ConflictError:
        return False  # changed under us (a spec edit, Kopf's finalizer): the next tick reads it again
    return True


# --------------------------------------------------------------------------- TrainingRun


@kopf.timer(crd.GROUP, crd.VERSION, "trainingruns", interval=SETTINGS.tick_s)
@counted("TrainingRun")
def reconcile_training_run(
    body: kopf.Body, name: str, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    assert namespace is not None  # TrainingRuns are namespaced
    if _training_settled(body):
        return  # finished and handed over: no API calls for old runs
    kube: Kube = memo.kube
    fresh = kube.get("TrainingRun", namespace, name)
    if fresh is None or fresh["metadata"].get("deletionTimestamp"):
        return
    run, status, now = TrainingRun.from_body(fresh), fresh.get("status") or {}, datetime.now(UTC)

    job = kube.get("Job", namespace, job_name(run))
    if job is None:
        blocked = _job_blocked(kube, run)
        if blocked is not None:  # no Job: it would be refused, or its pod would wait forever. Say so instead
            reason, message = blocked
            conditions = set_condition(
                status.get("conditions") or [],
                "Succeeded",
                "Unknown",
                reason,
                message,
                now,
                run.ref.generation,
            )
            if (
                _write_status(kube, fresh, {**status, "phase": "Pending", "conditions": conditions})
                and reason == "ImageNotAllowed"
            ):
                _post(fresh, RolloutEvent("Warning", reason, message))
            return
        job = kube.apply(desired_training_job(run))
    pods = (
        kube.list_objects("Pod", namespace, f"{JOB_NAME_LABEL}={job_name(run)}") if job_finished(job) else []
    )
    outcome = training_outcome(job, pods)

    new_status = training_run_status(run, outcome, status, now)
    events = (
        [
            RolloutEvent(
                "Normal" if outcome.phase == "Succeeded" else "Warning",
                f"Training{outcome.phase}",
                outcome.message,
            )
        ]
        if outcome.finished
        else []
    )
    if outcome.phase == "Succeeded" and run.fraud_model:
        new_status["conditions"], handed_over = _hand_over(kube, run, new_status["conditions"], now)
        events += handed_over
    if _write_status(kube, fresh, new_status):
        for event in events:
            _post(fresh, event)


def _job_blocked(kube: Kube, run: TrainingRun) -> tuple[str, str] | None:
    """(reason, message) when the training Job must not be created yet, else None."""
    refusal = SETTINGS.image_policy.refusal({"training": run.image})
    if refusal:
        return "ImageNotAllowed", refusal
    missing = sorted(
        c
        for c in {volume_claim(run.data_uri), volume_claim(run.output_uri)}
        if c and kube.get("PersistentVolumeClaim", run.ref.namespace, c) is None
    )
    return ("VolumeMissing", f"PersistentVolumeClaim {', '.join(missing)} not found") if missing else None


def _hand_over(
    kube: Kube, run: TrainingRun, conditions: list[dict[str, Any]], now: datetime
) -> tuple[list[dict[str, Any]], list[RolloutEvent]]:
    """Make the new artifact the referenced FraudModel's candidate (once)."""
    assert run.fraud_model is not None
    fraud_model = kube.get("FraudModel", run.ref.namespace, run.fraud_model)
    if fraud_model is None:
        message = f"FraudModel {run.fraud_model} not found in namespace {run.ref.namespace}; retrying"
        return set_condition(
            conditions, "FraudModelUpdated", "False", "FraudModelNotFound", message, now, run.ref.generation
        ), []
    patch = fraud_model_change(run, fraud_model)
    events = []
    if patch is not None:
        try:
            kube.merge_patch("FraudModel", run.ref.namespace, run.fraud_model, patch)
        except ApiException as exc:
            if exc.status != 422:
                raise
            # The FraudModel's schema refuses the version (e.g. trained with another label delay than the
            # stable it would roll out against): say so, and try again each tick, as for a missing model.
            message = f"FraudModel {run.fraud_model} refused {run.version}: {_api_message(exc)}"
            return set_condition(
                conditions, "FraudModelUpdated", "False", "HandOverRejected", message, now, run.ref.generation
            ), [RolloutEvent("Warning", "HandOverRejected", message)]
        role = "candidate" if "candidate" in patch["spec"] else "stable"
        message = f"{run.version} ({artifact_uri(run)}) is now FraudModel {run.fraud_model}'s {role}"
        events.append(RolloutEvent("Normal", "FraudModelUpdated", message))
        _post(
            fraud_model,
            RolloutEvent(
                "Normal",
                "CandidateFromTraining",
                f"{run.version} ({artifact_uri(run)}) from TrainingRun {run.ref.name} is the {role}",
            ),
        )
    message = f"FraudModel {run.fraud_model} has {run.version} ({artifact_uri(run)})"
    return set_condition(
        conditions, "FraudModelUpdated", "True", "HandedOver", message, now, run.ref.generation
    ), events


def _training_settled(body: kopf.Body) -> bool:
    status = dict(body.get("status") or {})
    if status.get("phase") == "Failed":
        return True
    handed_over = _condition(status, "FraudModelUpdated").get("status") == "True"
    return status.get("phase") == "Succeeded" and (handed_over or "fraudModelRef" not in body["spec"])
