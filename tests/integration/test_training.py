"""The training job end to end on simulated data: report, artifact formats, bring-your-own CSV, registry."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
import xgboost as xgb

from fraudops import registry
from fraudops.artifact import load_artifact
from fraudops.db import migrate
from fraudops.features.encode import encode_frame
from fraudops.features.engine import FeatureEngine
from fraudops.features.spec import FEATURE_FAMILIES
from fraudops.scoring import Scorer
from fraudops_infra.processes import fraudops_command
from fraudops_simulator import SimulationConfig, simulate, write_tables
from fraudops_training.pipeline import TrainingConfig, run_training
from tests.conftest import REPO_ROOT

REPORTED_METRICS = {
    "roc_auc",
    "average_precision",
    "precision",
    "recall",
    "f1",
    "recall_at_fpr_0_1pct",
    "recall_at_fpr_1pct",
    "card_precision_at_k",
    "expected_cost",
    "threshold",
}


def test_the_report_states_the_threshold_rule_shows_its_plots_and_the_json_has_every_metric(
    trained_artifact: Path,
) -> None:
    report = trained_artifact / "report"
    page = (report / "report.html").read_text()
    assert "Decision threshold rule" in page and "minimum expected cost" in page
    assert page.count("data:image/png;base64,") >= 5  # PR/ROC, scores, importance, per-pattern, Optuna
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics["metrics"]) == {
        "model",
        "untuned XGBoost",
        "textbook XGBoost",
        "amount-only logistic regression",
    }
    generalization = metrics["generalization"]
    assert set(generalization) == {
        "by month of the held-out window",
        "by week of the held-out window",
        "by customer tenure",
        "calendar proxies",
    }
    assert sum(row["transactions"] for row in generalization["by month of the held-out window"]) == len(
        pd.read_parquet(report / "holdout_predictions.parquet")
    )
    assert not [row["feature"] for row in generalization["calendar proxies"] if row["flagged"]], (
        "no clock learned"
    )
    for name, values in metrics["metrics"].items():
        assert set(values) >= REPORTED_METRICS, f"{name} lacks {REPORTED_METRICS - set(values)}"
    assert metrics["per_pattern"], "recall per fraud pattern is reported"
    assert (
        metrics["metrics"]["model"]["average_precision"]
        > metrics["metrics"]["amount-only logistic regression"]["average_precision"]
    )


def test_holdout_predictions_hold_every_test_transaction_with_score_and_label(trained_artifact: Path) -> None:
    holdout = pd.read_parquet(trained_artifact / "report" / "holdout_predictions.parquet")
    assert {"transaction_id", "score", "label"} <= set(holdout.columns)
    assert holdout["transaction_id"].is_unique
    assert holdout["score"].between(0, 1).all()
    assert set(holdout["label"].unique()) == {0, 1}


def test_the_artifact_loads_the_way_kserves_xgboost_runtime_loads_it(
    trained_artifact: Path, simulated_history: Path
) -> None:
    # KServe's xgbserver: exactly one file ending in .bst/.json/.ubj in the model dir, loaded with
    # xgb.Booster(model_file=...), predicting on a bare DMatrix of the instances.
    model_files = [
        p for p in trained_artifact.iterdir() if p.is_file() and p.suffix in (".bst", ".json", ".ubj")
    ]
    assert len(model_files) == 1
    kserve_booster = xgb.Booster(params={"nthread": 1}, model_file=str(model_files[0]))
    rows = FeatureEngine().replay(pd.read_parquet(simulated_history).head(500))
    kserve_scores = kserve_booster.predict(xgb.DMatrix(rows))
    ours = Scorer(load_artifact(str(trained_artifact))).score(rows)
    assert np.allclose(kserve_scores, ours, atol=1e-6)


def test_a_model_trained_by_default_scores_new_traffic_as_the_online_scorers_compute_its_features(
    trained_artifact: Path, tmp_path: Path
) -> None:
    # The stream consumer, the gateway and the predictor compute features without an entity table
    # (FeatureEngine()): the thirty entity features are unknown there. The e2e cluster's seed model was
    # trained with them and, served without them, flagged 1,736 of 2,000 transactions of a stream
    # with under 2% fraud.
    artifact = load_artifact(str(trained_artifact))
    path = tmp_path / "stream.parquet"
    write_tables(simulate(SimulationConfig(transactions=4_000, customers=400, days=14, seed=7)), path)
    stream = pd.read_parquet(path)
    scores = Scorer(artifact).score(FeatureEngine().transform(encode_frame(stream)))
    flagged = float(np.mean(scores >= artifact.metadata.threshold))
    fraud = float(stream["is_fraud"].mean())
    # a cost threshold (a missed fraud costs 20 false alerts) flags a few times the fraud rate, not most
    assert flagged <= max(10 * fraud, 0.1), f"{flagged:.1%} flagged on a stream with {fraud:.1%} fraud"
    entity_columns = {f"f{int(feature)}" for feature in FEATURE_FAMILIES["entity_risk"]}
    assert not entity_columns & set(artifact.booster.get_score()), "the trees split on entity features"
    assert artifact.metadata.training["entity_features"] is False


def test_a_csv_with_only_five_columns_trains_through_the_mapping_and_lists_skipped_families(
    simulated_history: Path, tmp_path: Path
) -> None:
    history = pd.read_parquet(simulated_history)
    minimal = pd.DataFrame(
        {
            "ts": history["event_time"].astype(str),
            "cust": history["customer_id"],
            "merchant": history["merchant_id"],
            "amt": history["amount"],
            "label": history["is_fraud"],
        }
    )
    csv = tmp_path / "minimal.csv"
    minimal.to_csv(csv, index=False)
    result = run_training(
        TrainingConfig(
            data=csv,
            columns={
                "ts": "event_time",
                "cust": "customer_id",
                "merchant": "merchant_id",
                "amt": "amount",
                "label": "is_fraud",
            },
            output_root=tmp_path / "models",
            trials=2,
            timeout_s=60,
            label_delay_days=5,
        )
    )
    skipped = result.data.skipped_families
    for family in ("novelty: devices", "geography: distance and speed", "channel", "card testing: declines"):
        assert family in skipped
    assert "novelty: merchants" not in skipped
    report = json.loads((result.artifact_dir / "report" / "metrics.json").read_text())
    assert report["skipped_families"] == skipped
    assert 0 < report["metrics"]["model"]["average_precision"] <= 1


def test_extra_columns_train_into_the_artifact_with_their_schema_extension(
    extras_trained_artifact: Path,
) -> None:
    from fraudops.extras import ENCODING_VERSION, ExtraInputs, ExtraKind

    artifact = load_artifact(str(extras_trained_artifact))  # served: no longer refused
    extension = artifact.metadata.extra_inputs
    assert extension["encoding_version"] == ENCODING_VERSION and extension["unknown_category_code"] == 0
    extras = ExtraInputs.from_dict(extension)
    assert extras.fields.kinds == {"customer_age": ExtraKind.NUMERIC, "mcc": ExtraKind.CATEGORICAL}
    assert artifact.metadata.feature_names[-2:] == ["extra_customer_age", "extra_mcc"]
    assert artifact.booster.num_features() == len(artifact.metadata.feature_names)
    assert {"grocery", "crypto", "fuel"} <= set(extras.categorical["mcc"]), (
        "Crypto and crypto are one category"
    )
    assert "" not in extras.categorical["mcc"], "an empty category is a missing value"
    encoded = extras.encode_rows(
        [{"mcc": "Grocery"}, {"mcc": " grocery"}, {"mcc": "never-seen"}, {"mcc": ""}]
    )
    assert encoded[0, 1] == encoded[1, 1] != encoded[2, 1] == 0 and np.isnan(encoded[3, 1])
    importance = artifact.booster.get_score(
        importance_type="total_gain"
    )  # by column: the file keeps no names
    width = len(artifact.metadata.feature_names)
    assert {f"f{width - 2}", f"f{width - 1}"} <= set(importance), "the model splits on both extra inputs"


def test_the_job_entrypoint_fails_with_a_clear_message_and_a_machine_readable_result(tmp_path: Path) -> None:
    result_file = tmp_path / "result.json"
    env = {
        **os.environ,
        "FRAUDOPS_TRAIN_DATA": str(tmp_path / "missing.csv"),
        "FRAUDOPS_TRAIN_RESULT_FILE": str(result_file),
    }
    completed = subprocess.run(
        fraudops_command("train"),
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 1
    assert "missing.csv does not exist" in completed.stderr
    assert json.loads(result_file.read_text()) == {
        "status": "Failed",
        "message": f"--data: {tmp_path / 'missing.csv'} does not exist",
    }


@pytest.mark.integration
def test_a_trained_version_is_registered_and_its_status_moves(
    trained_artifact: Path, scratch_database: str
) -> None:
    migrate.upgrade(scratch_database)
    artifact = load_artifact(str(trained_artifact))
    registry.register(scratch_database, artifact.metadata, str(trained_artifact))
    registry.register(scratch_database, artifact.metadata, str(trained_artifact))  # idempotent
    registry.set_status(scratch_database, artifact.name, artifact.version, "stable")
    stored = registry.get(scratch_database, artifact.name, artifact.version)
    assert stored is not None
    assert (stored.status, stored.uri) == ("stable", str(trained_artifact))
    assert stored.metrics["average_precision"] == pytest.approx(
        artifact.metadata.metrics["average_precision"]
    )
    with psycopg.connect(scratch_database) as conn:
        assert conn.execute("SELECT count(*) FROM model_versions").fetchone() == (1,)


def test_training_on_a_too_short_history_says_which_windows_do_not_fit(
    simulated_history: Path, tmp_path: Path
) -> None:
    from fraudops.errors import RejectedInputError

    history = pd.read_parquet(simulated_history)
    short = history[history["event_time"] < history["event_time"].min() + pd.Timedelta(days=14)]
    path = tmp_path / "short.parquet"
    short.to_parquet(path)
    with pytest.raises(RejectedInputError, match="too short"):
        run_training(TrainingConfig(data=path, output_root=tmp_path, trials=1, timeout_s=10))
