"""Session fixtures shared by every test folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fraudops.config import ENV_FILE_VARIABLE

REPO_ROOT = Path(__file__).resolve().parent.parent
# Settings in the tests, and in every process they start, come from the environment the tests give
# them: a developer's own `.env` in the checkout is never read.
os.environ[ENV_FILE_VARIABLE] = ""


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def simulated_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small labelled history from the real simulator (60 days, every fraud pattern)."""
    from fraudops_simulator import SimulationConfig, simulate, write_tables

    path = tmp_path_factory.mktemp("history") / "history.parquet"
    write_tables(simulate(SimulationConfig(transactions=80_000, customers=1_500, days=60, seed=11)), path)
    return path


@pytest.fixture(scope="session")
def entity_trained_artifact(simulated_history: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """As `trained_artifact`, with the entity-risk features (served where the entity-state component runs)."""
    from fraudops_training.pipeline import TrainingConfig, run_training

    root = tmp_path_factory.mktemp("entity-models")
    result = run_training(
        TrainingConfig(
            data=simulated_history,
            output_root=root,
            version="test-entity-v1",
            trials=3,
            timeout_s=90,
            label_delay_days=5,
            entity_features=True,
        )
    )
    return result.artifact_dir


@pytest.fixture(scope="session")
def trained_artifact(simulated_history: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model artifact trained by the real pipeline on the simulated history (small budget)."""
    from fraudops_training.pipeline import TrainingConfig, run_training

    root = tmp_path_factory.mktemp("models")
    result = run_training(
        TrainingConfig(
            data=simulated_history,
            output_root=root,
            version="test-v1",
            trials=3,
            timeout_s=90,
            label_delay_days=5,
        )
    )
    return result.artifact_dir
