"""Raw transactions sent to the KServe predictor (V1 `instances` as objects) are featurised without
history. A model trained on the entity-risk features cannot be scored that way: without the entity
table its thirty entity features are unknown, and the trees would send every transaction down their
missing-value branches. The predictor refuses such requests with a 400 that says what to send instead.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from kserve.errors import InvalidInput

from fraudops.features.spec import FEATURE_NAMES
from fraudops_predictor.model import FraudPredictor
from tests.unit.test_predictor_drift import tiny_artifact

TRANSACTION = {"transaction_id": "t-1", "customer_id": "c-1", "amount": 12.5}


def scored(predictor: FraudPredictor, instances: list) -> list[float]:
    async def request() -> dict:
        payload = await predictor.preprocess({"instances": instances})
        return await predictor.postprocess(await predictor.predict(payload))

    return [row["score"] if isinstance(row, dict) else row for row in asyncio.run(request())["predictions"]]


def loaded(folder: Path, recorded: dict[str, object]) -> FraudPredictor:
    rows = np.random.default_rng(3).normal(size=(500, len(FEATURE_NAMES))).astype(np.float32)
    predictor = FraudPredictor("card-fraud", str(tiny_artifact(folder, "v1", rows, recorded)))
    assert predictor.load()
    return predictor


def test_a_model_trained_without_entity_features_scores_raw_transactions(tmp_path: Path) -> None:
    predictor = loaded(tmp_path, {"entity_features": False})
    (score,) = scored(predictor, [TRANSACTION])
    assert 0.0 <= score <= 1.0


def test_a_model_trained_on_entity_features_refuses_raw_transactions_and_says_what_to_send(
    tmp_path: Path,
) -> None:
    predictor = loaded(tmp_path, {"entity_features": True})
    with pytest.raises(InvalidInput, match=r"trained on the entity-risk features.*send feature rows"):
        scored(predictor, [TRANSACTION])
