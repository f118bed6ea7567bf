"""`FraudPredictor`, a `kserve.Model`: load → preprocess → predict → postprocess for one model artifact.

Inputs, V1 (`/v1/models/<name>:predict`): `instances` are feature rows (lists in the metadata's
feature order) or raw transactions (objects in the fraudops schema, `extras` included; scored
without customer history — the gateway and the consumer hold the history and send feature rows; a
model trained on the entity-risk features refuses them, as it would score them without its entity table).
Inputs, V2 (`/v2/models/<name>/infer`): one FP32 tensor `features` [n, F], or one FP32 tensor per
feature named as in the model metadata. A model with extra inputs also takes `features` with the
built-in features only [n, F - E] and its extra fields raw beside them, one tensor each
(`extras.<name>`, see `fraudops.inference_protocol`), which it encodes with its artifact's codes.
Set the request parameter `reasons: true` for TreeSHAP reason codes (`top_k`, default 3;
`exact: false` for XGBoost's fast approximation).

Scoring runs on a worker thread (XGBoost releases the GIL), never on the event loop. A request
KServe cannot serve as asked is 400 with the reason (`InvalidInput`), including bad parameters;
while no model is loaded it is 503 (`ModelNotReady`); never a 500 for what the caller sent.
"""

from __future__ import annotations

import asyncio
import struct
import time
import uuid
from typing import Any

import numpy as np
import orjson
from kserve import InferInput, InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput, ModelNotReady
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fraudops.artifact import load_artifact
from fraudops.drift import read_reference
from fraudops.errors import ConfigurationError
from fraudops.features.encode import encode_transactions
from fraudops.features.engine import FeatureEngine
from fraudops.features.spec import FEATURE_NAMES
from fraudops.inference_protocol import EXTRAS_INPUT_PREFIX, FEATURES_INPUT, extras_rows, extras_tensor_types
from fraudops.monitoring import FeatureDrift
from fraudops.routing import TrainedFeatures
from fraudops.schema import Transaction
from fraudops.scoring import Scorer
from fraudops.tracing import traced
from fraudops.variants import recorded_features
from fraudops_predictor import metrics

PROBABILITY_OUTPUT = "fraud_probability"
REASONS_OUTPUT = "reasons"


class InferenceParameters(BaseModel):
    """The request parameters this model reads (others, such as KServe's own, pass untouched)."""

    model_config = ConfigDict(extra="ignore")

    reasons: bool = False
    top_k: int = Field(3, ge=1, le=1000)
    exact: bool = True  # False: XGBoost's fast approximate contributions

    @classmethod
    def parse(cls, parameters: Any) -> InferenceParameters:
        if parameters is None:
            return cls()
        if not isinstance(parameters, dict):
            raise InvalidInput('"parameters" must be an object')
        try:
            return cls.model_validate(parameters)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            raise InvalidInput(f"parameter {'.'.join(map(str, first['loc']))}: {first['msg']}") from exc


class FraudPredictor(Model):
    """`declared`: what the deployment says the model was trained with (the FraudModel's
    `spec.<role>.features`, which the operator passes on); checked against the artifact at load."""

    def __init__(self, name: str, model_uri: str, declared: TrainedFeatures | None = None) -> None:
        super().__init__(name)
        self.model_uri = model_uri
        self.declared = declared
        self.scorer: Scorer | None = None
        self.drift: FeatureDrift | None = None  # None for an artifact trained without a drift reference
        self.trained: TrainedFeatures = TrainedFeatures()  # the loaded artifact's

    # --- load ----------------------------------------------------------------------------------

    def load(self) -> bool:
        artifact = load_artifact(self.model_uri, nthread=1)
        trained = recorded_features(artifact)
        if self.declared is not None:
            # The gateway and the consumer compute the features by the declaration (they hold no artifact):
            # a model that was trained otherwise must not be served as if it had been.
            problem = self.declared.mismatch(
                trained, f"{artifact.name}:{artifact.version} ({self.model_uri})"
            )
            if problem:
                raise ConfigurationError(problem)
        self.scorer = Scorer(artifact)
        self.trained = trained
        self._warm_up(self.scorer)
        if self.drift is not None:
            self.drift.forget()  # a reload: the version served before is no longer scored here
        reference = read_reference(artifact.path)
        self.drift = (
            metrics.feature_drift(reference, self.scorer.model_version, self.scorer.feature_names)
            if reference is not None
            else None
        )
        metrics.MODEL_INFO.labels(model=self.name, version=artifact.version).set(1)
        self.ready = True
        return self.ready

    @staticmethod
    def _warm_up(scorer: Scorer) -> None:
        """Every scoring path once, so no client request pays for JIT compilation or lazy initialisation."""
        width = len(scorer.feature_names)
        for rows in (1, 1000):  # the one-row walk, then blocks of eight rows
            scorer.score(np.zeros((rows, width), dtype=np.float32))
        scorer.reasons(np.zeros((1, width), dtype=np.float32), exact=True)
        scorer.reasons(np.zeros((1, width), dtype=np.float32), exact=False)
        FeatureEngine().transform(encode_transactions([Transaction(amount=1.0)]))

    @property
    def _scorer(self) -> Scorer:
        if self.scorer is None:
            raise ModelNotReady(self.name, "no model is loaded yet")
        return self.scorer

    def get_input_types(self) -> list[dict[str, Any]]:
        names = self._scorer.feature_names
        raw_extras = extras_tensor_types(self._scorer.extra_fields)
        return (
            [{"name": FEATURES_INPUT, "datatype": "FP32", "shape": [-1, len(names)]}]
            + [{"name": name, "datatype": "FP32", "shape": [-1]} for name in names]
            + [{"name": name, "datatype": datatype, "shape": [-1]} for name, datatype in raw_extras.items()]
        )

    def get_output_types(self) -> list[dict[str, Any]]:
        return [
            {"name": PROBABILITY_OUTPUT, "datatype": "FP32", "shape": [-1]},
            {"name": REASONS_OUTPUT, "datatype": "BYTES", "shape": [-1]},
        ]

    # --- preprocess ------------------------------------------------------------------------------

    async def preprocess(self, payload: dict | InferRequest, headers: dict[str, str] | None = None) -> dict:
        """Feature matrix and request parameters; `request` keeps the V2 request for the response."""
        if isinstance(payload, InferRequest):
            parameters = InferenceParameters.parse(payload.parameters)
            return {"features": self._v2_features(payload), "parameters": parameters, "request": payload}
        if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
            raise InvalidInput('V1 requests need a JSON object with an "instances" list')
        parameters = InferenceParameters.parse(payload.get("parameters"))
        return {
            "features": self._v1_features(payload["instances"]),
            "parameters": parameters,
            "request": None,
        }

    def _v2_features(self, request: InferRequest) -> np.ndarray:
        scorer = self._scorer
        names = scorer.feature_names
        by_name = {tensor.name: tensor for tensor in request.inputs}
        if FEATURES_INPUT in by_name:
            features = _as_float32(by_name[FEATURES_INPUT])
            if features.ndim == 2 and scorer.extra_inputs and features.shape[1] == len(FEATURE_NAMES):
                return scorer.model_rows(features, self._v2_extras(by_name, len(features)))
            if features.ndim != 2 or features.shape[1] != len(names):
                raise InvalidInput(
                    f'input "features" must have shape [n, {len(names)}], got {list(features.shape)}'
                    + (
                        f" (or [n, {len(FEATURE_NAMES)}] with the extra fields as inputs "
                        f"{', '.join(extras_tensor_types(scorer.extra_fields))})"
                        if scorer.extra_inputs
                        else ""
                    )
                )
            return features
        missing = [name for name in names if name not in by_name]
        if missing:
            raise InvalidInput(
                f'send input "features" [n, {len(names)}] or one input per feature; missing '
                f"{len(missing)}, e.g. {missing[:3]}"
            )
        columns = [_as_float32(by_name[name]).reshape(-1) for name in names]
        if len({len(column) for column in columns}) != 1:
            raise InvalidInput("every per-feature input must have the same number of rows")
        return np.stack(columns, axis=1)

    def _v2_extras(self, by_name: dict[str, InferInput], rows: int) -> list[dict[str, Any]]:
        """The raw extra fields sent beside the built-in features (a field not sent: missing)."""
        tensors = {}
        for name, tensor in by_name.items():
            if name.startswith(EXTRAS_INPUT_PREFIX):
                try:
                    tensors[name] = tensor.as_numpy()
                except (TypeError, ValueError, struct.error) as exc:  # a malformed BYTES tensor too
                    raise InvalidInput(
                        f'input "{name}" does not fill its shape {tensor.shape}: {exc}'
                    ) from exc
        try:
            return extras_rows(self._scorer.extra_fields, tensors, rows)
        except (TypeError, ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"extra field inputs: {exc}") from exc

    def _v1_features(self, instances: list[Any]) -> np.ndarray:
        width = len(self._scorer.feature_names)
        if not instances:
            return np.empty((0, width), dtype=np.float32)
        if all(isinstance(row, list) for row in instances):
            try:
                features = np.asarray(instances, dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f"feature rows must hold numbers: {exc}") from exc
            if features.ndim != 2 or features.shape[1] != width:
                raise InvalidInput(f"feature rows must each have {width} numbers in the metadata's order")
            return features
        if all(isinstance(row, dict) for row in instances):
            if self.trained.entity_features:
                # A fresh engine holds no entity table: the thirty entity-risk features would be unknown
                # and the trees would score every transaction down their missing-value branches.
                raise InvalidInput(
                    "raw transactions cannot be scored by this model: it was trained on the entity-risk "
                    "features, which only the gateway or the stream consumer with the entity table "
                    "(ENTITY_TABLE=true) compute; send feature rows"
                )
            try:
                transactions = [Transaction.model_validate(row) for row in instances]
            except ValidationError as exc:
                first = exc.errors()[0]
                raise InvalidInput(
                    f"invalid transaction: {'.'.join(map(str, first['loc']))}: {first['msg']}"
                ) from exc
            fields = self._scorer.extra_fields
            for transaction in transactions:
                refusal = fields.refusal(transaction.extras) if fields else None
                if refusal is not None:
                    raise InvalidInput(f"invalid transaction: {refusal[0]}: {refusal[1]}")
            # No customer history here: a fresh engine per request (see the module docstring), with the
            # feature configuration the model was trained with.
            features = FeatureEngine(self.trained.config).transform(encode_transactions(transactions))
            return self._scorer.model_rows(features, [transaction.extras for transaction in transactions])
        raise InvalidInput("instances must be all feature rows (lists) or all transactions (objects)")

    # --- predict ---------------------------------------------------------------------------------

    async def predict(self, payload: dict, headers: dict[str, str] | None = None) -> dict:
        parameters: InferenceParameters = payload["parameters"]
        started = time.perf_counter()
        attributes = {
            "fraudops.model.name": self.name,
            "fraudops.model.version": self._scorer.model_version,
            "fraudops.rows": len(payload["features"]),
        }
        # A child of KServe's own server span (its FastAPI instrumentation continues the caller's
        # traceparent); the headers are the fallback where that instrumentation is absent.
        with traced(f"score {self.name}", __name__, headers=headers, attributes=attributes):
            scores, reasons = await asyncio.to_thread(
                self._score, payload["features"], parameters.reasons, parameters.top_k, parameters.exact
            )
        metrics.observe_batch(
            self.name,
            self._scorer.model_version,
            scores,
            self._scorer.threshold,
            time.perf_counter() - started,
        )
        return {**payload, "scores": scores, "reasons": reasons}

    def _score(
        self, features: np.ndarray, want_reasons: bool, top_k: int, exact: bool
    ) -> tuple[np.ndarray, list | None]:
        scores = self._scorer.score(features)
        if self.drift is not None:
            self.drift.observe(features)
        reasons = None
        if want_reasons:
            reasons = [
                [reason.as_dict() for reason in row] for row in self._scorer.reasons(features, top_k, exact)
            ]
        return scores, reasons

    # --- postprocess -------------------------------------------------------------------------------

    async def postprocess(
        self,
        result: dict,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict | InferResponse:
        scores, reasons, request = result["scores"], result["reasons"], result["request"]
        scorer = self._scorer
        if request is None:
            body: dict[str, Any] = {
                "predictions": scores.tolist(),
                "model_version": scorer.model_version,
                "threshold": scorer.threshold,
            }
            if reasons is not None:
                body["reasons"] = reasons
            return body
        outputs = [InferOutput(name=PROBABILITY_OUTPUT, shape=[len(scores)], datatype="FP32", data=scores)]
        if reasons is not None:
            encoded = np.asarray([orjson.dumps(row) for row in reasons], dtype=np.object_)
            outputs.append(
                InferOutput(name=REASONS_OUTPUT, shape=[len(reasons)], datatype="BYTES", data=encoded)
            )
        return InferResponse(
            model_name=self.name,
            infer_outputs=outputs,
            response_id=request.id or str(uuid.uuid4()),
            parameters={"model_version": scorer.model_version, "threshold": scorer.threshold},
            use_binary_outputs=request.use_binary_outputs,
            requested_outputs=request.request_outputs,
        )


def _as_float32(tensor: InferInput) -> np.ndarray:
    try:
        return np.asarray(tensor.as_numpy(), dtype=np.float32)
    except (TypeError, ValueError) as exc:  # strings, or data that does not fill the declared shape
        raise InvalidInput(
            f'input "{tensor.name}" must hold FP32 numbers filling its shape {tensor.shape}: {exc}'
        ) from exc
