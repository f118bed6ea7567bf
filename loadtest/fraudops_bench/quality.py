"""Model-quality benchmark on data we did not design for: five columns, then a shifted world.

1. Simulate a `realistic` history, keep it whole, and also export it as a bank would with only five
   columns (time, customer, terminal, amount, label — renamed, every other column dropped, CSV).
2. `fraudops train` on each; the numbers are the held-out AP of the model and its baselines
   (textbook XGBoost, untuned XGBoost, amount-only) on the same split.
3. Generalization: the model trained on the whole `realistic` history scores a history simulated
   with another seed (same configuration) and one simulated `hard` (more imitation, more label
   noise, later labels, faster drift): the AP of its last fifth in each.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pv
import xgboost as xgb
from rich.console import Console
from sklearn.metrics import average_precision_score

from fraudops.artifact import load_artifact
from fraudops.features.engine import FeatureEngine
from fraudops.features.spec import FeatureConfig
from fraudops_bench.loading import FIVE_COLUMNS
from fraudops_bench.results import Measurement
from fraudops_simulator import SimulationConfig, simulate
from fraudops_training.pipeline import TrainingConfig, run_training

ROWS = ("model", "textbook XGBoost", "untuned XGBoost", "amount-only logistic regression")
SHORT = {
    "model": "model",
    "textbook XGBoost": "textbook",
    "untuned XGBoost": "untuned",
    "amount-only logistic regression": "amount_only",
}


def history(transactions: int, seed: int, difficulty: str) -> pd.DataFrame:
    config = SimulationConfig(transactions=transactions, seed=seed, difficulty=difficulty)
    frame = pd.concat([table.to_pandas() for table in simulate(config)], ignore_index=True)
    return frame.sort_values(["event_time", "transaction_id"], kind="stable").reset_index(drop=True)


def five_column_csv(frame: pd.DataFrame, path: Path) -> Path:
    five = frame[list(FIVE_COLUMNS)].rename(columns=FIVE_COLUMNS)
    pv.write_csv(pa.Table.from_pandas(five, preserve_index=False), path)
    return path


def last_fifth_ap(artifact_dir: Path, frame: pd.DataFrame) -> float:
    """AP of a trained model on the last fifth of another history (features replayed from its start)."""
    artifact = load_artifact(str(artifact_dir), nthread=2)
    config = FeatureConfig(**artifact.metadata.feature_config)
    test = (frame["event_time"] >= frame["event_time"].quantile(0.8)).to_numpy()
    features = FeatureEngine(config, entity_table=True).replay(frame, keep=test)
    scores = artifact.booster.predict(xgb.DMatrix(features))
    return float(average_precision_score(frame.loc[test, "is_fraud"], scores))


def quality(
    transactions: int = 1_000_000, trials: int = 30, timeout_s: int = 600, seed: int = 42
) -> Measurement:
    console = Console(stderr=True, quiet=True)
    numbers: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        frame = history(transactions, seed, "realistic")
        full_path = root / "full.parquet"
        frame.to_parquet(full_path, index=False)
        five_path = five_column_csv(frame, root / "five.csv")
        runs = {
            "full": TrainingConfig(
                data=full_path,
                output_root=root / "models",
                model_name="full",
                trials=trials,
                timeout_s=timeout_s,
                seed=seed,
                entity_features=True,  # what the features can do (served only where the component runs)
            ),
            "five": TrainingConfig(
                data=five_path,
                columns={theirs: ours for ours, theirs in FIVE_COLUMNS.items()},
                output_root=root / "models",
                model_name="five",
                trials=trials,
                timeout_s=timeout_s,
                seed=seed,
                entity_features=True,  # what the features can do (served only where the component runs)
            ),
        }
        minutes = {}
        for data, config in runs.items():
            result = run_training(config, console)
            minutes[data] = result.seconds / 60
            for row in ROWS:
                numbers[f"{data}_{SHORT[row]}_ap"] = result.metrics[row]["average_precision"]
            if data == "full":
                artifact = result.artifact_dir
        del frame
        numbers["shift_same_config_ap"] = last_fifth_ap(
            artifact, history(transactions // 2, seed + 1, "realistic")
        )
        numbers["shift_hard_ap"] = last_fifth_ap(artifact, history(transactions // 2, seed + 1, "hard"))
    numbers["five_margin_over_textbook"] = numbers["five_model_ap"] - numbers["five_textbook_ap"]
    numbers["five_untuned_minus_textbook"] = numbers["five_untuned_ap"] - numbers["five_textbook_ap"]
    numbers["full_margin_over_textbook"] = numbers["full_model_ap"] - numbers["full_textbook_ap"]
    return Measurement(
        name="quality",
        description=f"held-out AP on {transactions:,} `realistic` simulated transactions, whole and as a five-column "
        f"CSV ({trials} Optuna trials each); then the whole-data model on another seed and on `hard`",
        numbers=numbers,
        units=dict.fromkeys(numbers, ""),
        targets={
            "five_margin_over_textbook": ">= 0.05",
            "five_untuned_minus_textbook": ">= -0.05",
            "full_margin_over_textbook": ">= 0.05",
        },
        details={"training_minutes": minutes},
    )
