"""The KServe predictor measures the feature drift of the rows it scores, against its artifact's reference.

A variant the operator deploys is always scored remotely, so the decision paths never see its artifact:
without the predictor's `fraudops_feature_psi`, `maxFeaturePSI` and the drift alert see nothing in a
cluster. The artifact is a tiny real one (a two-tree booster on the real feature list); the metrics are
the real ones in the process registry.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xgboost as xgb
from prometheus_client import REGISTRY

from fraudops.artifact import ModelMetadata, save_artifact
from fraudops.drift import build_reference, write_reference
from fraudops.features.spec import FEATURE_NAMES, FEATURE_VERSION
from fraudops_predictor.model import FraudPredictor

TRAINING_ROWS = 5_000


def tiny_artifact(
    folder: Path, version: str, training: np.ndarray, recorded: dict[str, object] | None = None
) -> Path:
    """`recorded`: the metadata's `training` (what it was trained with, e.g. the entity features)."""
    rng = np.random.default_rng(7)
    booster = xgb.train(
        {"max_depth": 2, "nthread": 1},
        xgb.DMatrix(training, label=rng.integers(0, 2, len(training))),
        num_boost_round=2,
    )
    metadata = ModelMetadata(
        name="card-fraud",
        version=version,
        feature_names=list(FEATURE_NAMES),
        feature_version=FEATURE_VERSION,
        threshold=0.5,
        threshold_rule="test",
        created_at=datetime.now(UTC).isoformat(),
        training=recorded or {},
    )
    save_artifact(folder, booster, metadata)
    write_reference(build_reference(training, FEATURE_NAMES), folder)
    return folder


def score(predictor: FraudPredictor, rows: np.ndarray) -> None:
    async def request() -> None:
        payload = await predictor.preprocess({"instances": rows.tolist()})
        await predictor.postprocess(await predictor.predict(payload))

    asyncio.run(request())


def psi(version: str, feature: str) -> float | None:
    return REGISTRY.get_sample_value(
        "fraudops_feature_psi",
        {"source": "predictor", "variant": "", "model_version": version, "feature": feature},
    )


def test_the_predictor_exports_the_drift_of_the_rows_it_scores(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    training = rng.normal(0, 1, (TRAINING_ROWS, len(FEATURE_NAMES))).astype(np.float32)
    predictor = FraudPredictor("card-fraud", str(tiny_artifact(tmp_path, "drift-v1", training)))
    predictor.load()
    shifted = rng.normal(0, 1, (1_000, len(FEATURE_NAMES))).astype(np.float32)
    shifted[:, 0] += 3  # the first feature moves far from training; the others do not

    score(predictor, shifted)

    drifted, steady = psi("drift-v1", FEATURE_NAMES[0]), psi("drift-v1", FEATURE_NAMES[1])
    assert drifted is not None and drifted > 0.25
    assert steady is not None and steady < 0.1


def test_a_reloaded_predictor_drops_the_drift_of_the_version_it_served_before(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    training = rng.normal(0, 1, (TRAINING_ROWS, len(FEATURE_NAMES))).astype(np.float32)
    predictor = FraudPredictor("card-fraud", str(tiny_artifact(tmp_path / "v1", "reload-v1", training)))
    predictor.load()
    score(predictor, rng.normal(0, 1, (1_000, len(FEATURE_NAMES))).astype(np.float32))
    assert psi("reload-v1", FEATURE_NAMES[0]) is not None

    predictor.model_uri = str(tiny_artifact(tmp_path / "v2", "reload-v2", training))
    predictor.load()

    assert psi("reload-v1", FEATURE_NAMES[0]) is None
