"""Training stores the drift reference in the artifact; the training history itself shows no drift against it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudops.drift import DriftMonitor, read_reference
from fraudops.features.engine import FeatureEngine
from fraudops.features.spec import FEATURE_NAMES

pytestmark = pytest.mark.integration


def test_the_artifact_carries_decile_histograms_of_every_feature(trained_artifact: Path) -> None:
    reference = read_reference(trained_artifact)
    assert reference is not None, "the training job wrote no drift-reference.yaml"
    assert reference.feature_names == tuple(FEATURE_NAMES)
    np.testing.assert_allclose(reference.shares.sum(axis=1), 1.0, atol=1e-4)
    assert reference.rows > 1000


def test_replaying_the_training_history_shows_no_drift_and_shifted_amounts_do(
    trained_artifact: Path, simulated_history: Path
) -> None:
    reference = read_reference(trained_artifact)
    assert reference is not None
    history = pd.read_parquet(simulated_history).sort_values("event_time", kind="stable")
    features = FeatureEngine().replay(history)
    same, shifted = DriftMonitor(reference), DriftMonitor(reference)
    tripled = history.assign(amount=history["amount"] * 3)
    for start in range(0, len(history), 1000):
        same.observe(features[start : start + 1000])
    shifted_features = FeatureEngine().replay(tripled)
    for start in range(0, len(history), 1000):
        shifted.observe(shifted_features[start : start + 1000])
    baseline, drifted = same.psi(), shifted.psi()
    assert baseline is not None and drifted is not None
    amount = FEATURE_NAMES.index("amount")
    assert baseline[amount] < 0.1
    assert drifted[amount] > 0.25
