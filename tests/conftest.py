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


#: The extra columns of `bank_history`: one numeric, one categorical (spelled in mixed case and padding).
BANK_NUMERIC, BANK_CATEGORICAL = "customer_age", "mcc"


@pytest.fixture(scope="session")
def bank_history(simulated_history: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`simulated_history` with two columns of a bank's own that tell something about fraud: an MCC-like
    category (crypto exchanges are favoured by fraud; spelled in any case, padded, sometimes empty or
    missing, one category rare) and the customer's age (fraud hits the oldest more often; sometimes
    missing)."""
    import numpy as np
    import pandas as pd

    history = pd.read_parquet(simulated_history)
    rng = np.random.default_rng(13)
    fraud = history["is_fraud"].to_numpy(dtype=bool)
    draw = rng.random(len(history))
    mcc = np.where(
        draw < 0.5, "Grocery", np.where(draw < 0.8, "fuel", np.where(draw < 0.97, "crypto", "pawn"))
    )
    mcc = np.where(fraud & (rng.random(len(history)) < 0.6), "Crypto ", mcc).astype(object)
    mcc[rng.random(len(history)) < 0.05] = None
    mcc[rng.random(len(history)) < 0.02] = ""
    age = rng.integers(18, 75, len(history)).astype(np.float64)
    age = np.where(fraud & (rng.random(len(history)) < 0.7), rng.integers(75, 95, len(history)), age)
    age[rng.random(len(history)) < 0.05] = np.nan
    path = tmp_path_factory.mktemp("bank") / "bank_history.parquet"
    history.assign(**{BANK_CATEGORICAL: mcc, BANK_NUMERIC: age}).to_parquet(path)
    return path


@pytest.fixture(scope="session")
def extras_trained_artifact(bank_history: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real artifact trained on `bank_history` with its two extra columns as model inputs."""
    from fraudops_training.pipeline import TrainingConfig, run_training

    result = run_training(
        TrainingConfig(
            data=bank_history,
            output_root=tmp_path_factory.mktemp("extras-models"),
            version="test-extras-v1",
            trials=2,
            timeout_s=90,
            label_delay_days=5,
            extra_numeric=(BANK_NUMERIC,),
            extra_categorical=(BANK_CATEGORICAL,),
        )
    )
    return result.artifact_dir
