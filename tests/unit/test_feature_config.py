"""The model's feature configuration (label delay, entity epoch) reaches the online engines: the artifact
records it, the Decider reads it from every local variant, the engines take it, and a published entity
table kept with other settings is refused with the flags that fix it; a model trained with the entity
features is refused where no entity table is attached."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from fraudops.artifact import ModelMetadata, load_artifact, save_artifact
from fraudops.config import Settings
from fraudops.db import async_pool
from fraudops.entitystore import check_config
from fraudops.errors import ConfigurationError
from fraudops.extras import NO_EXTRA_FIELDS
from fraudops.features.encode import encode_transactions
from fraudops.features.engine import FeatureEngine
from fraudops.features.spec import DAY, FEATURE_NAMES, FEATURE_VERSION, FeatureConfig
from fraudops.routing import RoutingTable, TrainedFeatures, Variant, VariantMode, load_routing_table
from fraudops.schema import Transaction
from fraudops.variants import Decider
from fraudops_gateway.runtime import GatewayRuntime
from fraudops_gateway.supervision import BackgroundHealth
from fraudops_predictor.model import FraudPredictor

FIVE_DAYS = FeatureConfig(label_delay_s=5 * DAY, entity_epoch_s=30.0)


def artifact(folder: Path, feature_config: dict, training: dict | None = None) -> Path:
    """A real (tiny) artifact: an XGBoost booster over the built-in features and its metadata."""
    rng = np.random.default_rng(1)
    data = xgb.DMatrix(rng.random((64, len(FEATURE_NAMES))), label=rng.integers(0, 2, 64))
    booster = xgb.train({"max_depth": 2, "nthread": 1}, data, num_boost_round=2)
    metadata = ModelMetadata(
        name="card-fraud",
        version=folder.name,
        feature_names=list(FEATURE_NAMES),
        feature_version=FEATURE_VERSION,
        threshold=0.5,
        threshold_rule="test",
        created_at=datetime.now(UTC).isoformat(),
        feature_config=feature_config,
        training=training or {},
    )
    return save_artifact(folder, booster, metadata)


def decider(*uris: Path) -> Decider:
    variants = [Variant(name="stable", model_version="v1", weight=100, model_uri=str(uris[0]))]
    variants += [
        Variant(name=f"shadow{i}", model_version=f"v{i + 2}", mode=VariantMode.SHADOW, model_uri=str(uri))
        for i, uri in enumerate(uris[1:])
    ]
    return Decider.from_table(RoutingTable(variants=variants), "test")


def test_the_recorded_configuration_round_trips_and_older_artifacts_keep_the_defaults() -> None:
    assert FeatureConfig.from_dict(FIVE_DAYS.as_dict()) == FIVE_DAYS
    # what an older artifact does not record keeps the default, except the entity lag: it read with none
    assert FeatureConfig.from_dict({}) == FeatureConfig(entity_lag_epochs=0)
    with pytest.raises(ValueError, match="unknown feature configuration"):
        FeatureConfig.from_dict({"label_delay_s": DAY, "window_s": 3})


def test_the_decider_reports_what_its_models_were_trained_with(tmp_path: Path) -> None:
    model = artifact(tmp_path / "v1", FIVE_DAYS.as_dict())
    assert load_artifact(str(model)).metadata.feature_config == FIVE_DAYS.as_dict()
    assert decider(model).feature_config() == FIVE_DAYS
    assert decider(model, artifact(tmp_path / "v2", FIVE_DAYS.as_dict())).feature_config() == FIVE_DAYS


def test_variants_trained_with_different_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="different feature configurations"):
        decider(
            artifact(tmp_path / "v1", FIVE_DAYS.as_dict()),
            artifact(tmp_path / "v2", FeatureConfig().as_dict()),
        ).feature_config()


def test_the_entity_lag_must_agree_only_between_variants_that_read_the_entity_table(tmp_path: Path) -> None:
    before_the_lag = {"label_delay_s": FIVE_DAYS.label_delay_s, "entity_epoch_s": FIVE_DAYS.entity_epoch_s}
    entity = {"entity_features": True}
    # an older model (lag 0) and a newer one (lag 1), neither reading the table, are served together
    served = decider(
        artifact(tmp_path / "a1", before_the_lag), artifact(tmp_path / "a2", FIVE_DAYS.as_dict())
    )
    assert served.feature_config() == FIVE_DAYS
    # a reader of the table sets the lag for all
    served = decider(
        artifact(tmp_path / "b1", before_the_lag, entity), artifact(tmp_path / "b2", FIVE_DAYS.as_dict())
    )
    assert served.feature_config() == FeatureConfig(
        label_delay_s=5 * DAY, entity_epoch_s=30.0, entity_lag_epochs=0
    )
    with pytest.raises(ConfigurationError, match="different feature configurations"):
        decider(
            artifact(tmp_path / "c1", before_the_lag, entity),
            artifact(tmp_path / "c2", FIVE_DAYS.as_dict(), entity),
        ).feature_config()


def test_a_published_table_fits_models_reading_it_at_any_lag_but_not_other_settings() -> None:
    check_config(FIVE_DAYS, FeatureConfig(label_delay_s=5 * DAY, entity_epoch_s=30.0, entity_lag_epochs=3))
    with pytest.raises(ConfigurationError, match="--epoch-seconds 60"):
        check_config(FIVE_DAYS, FeatureConfig(label_delay_s=5 * DAY))


def test_a_declared_lag_is_checked_against_an_entity_model_and_ignored_for_others() -> None:
    declared = TrainedFeatures(entity_features=True)  # the FraudModel said nothing: the default lag
    old = TrainedFeatures.recorded(
        {"label_delay_s": 7 * DAY, "entity_epoch_s": 60.0}, {"entity_features": True}
    )
    assert old.entity_lag_epochs == 0
    problem = declared.mismatch(old, "card-fraud:v1")
    assert problem is not None and "read 0 epoch(s) behind" in problem
    assert TrainedFeatures().mismatch(TrainedFeatures.recorded({}, {}), "card-fraud:v1") is None


def test_a_model_recording_an_unusable_configuration_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="card-fraud:v1 records a feature configuration"):
        decider(artifact(tmp_path / "v1", {"label_delay_s": 30 * DAY})).feature_config()


def test_an_online_engine_takes_the_model_configuration_and_a_filled_entity_table_refuses_a_new_one() -> None:
    online = FeatureEngine()
    online.transform(encode_transactions([Transaction(customer_id="c1", amount=10.0)]))
    online.configure(FIVE_DAYS)  # customer state does not depend on these settings
    assert online.config == FIVE_DAYS
    replay = FeatureEngine(entity_table=True)
    replay.configure(FIVE_DAYS)  # empty: fine
    replay.transform(encode_transactions([Transaction(customer_id="c1", amount=10.0, merchant_id="m1")]))
    with pytest.raises(ConfigurationError, match="rebuilt from history"):
        replay.configure(FeatureConfig())


def test_a_published_entity_table_kept_with_other_settings_is_refused_with_the_flags_that_fix_it() -> None:
    check_config(FIVE_DAYS, FIVE_DAYS)
    with pytest.raises(ConfigurationError, match="--label-delay-days 5 --epoch-seconds 30"):
        check_config(FeatureConfig(), FIVE_DAYS)


def test_a_model_trained_with_the_entity_features_is_refused_without_the_entity_table(tmp_path: Path) -> None:
    entity_model = artifact(tmp_path / "v2", {}, {"entity_features": True})
    plain_model = artifact(tmp_path / "v1", {}, {"entity_features": False})
    older_model = artifact(tmp_path / "v0", {})  # from before the flag: trained without them
    assert decider(plain_model, older_model).needs_entity_table() == []
    decider(plain_model, older_model).refuse_without_entity_table(entity_table=False)
    # a shadow needing the table is refused too: it would score (and be compared) on garbage
    both = decider(plain_model, entity_model)
    assert both.needs_entity_table() == ["card-fraud:v2"]
    both.refuse_without_entity_table(entity_table=True)
    with pytest.raises(ConfigurationError) as refused:
        both.refuse_without_entity_table(entity_table=False)
    message = str(refused.value)
    assert "card-fraud:v2" in message and "card-fraud:v1" not in message
    assert "ENTITY_TABLE=true" in message and "retrain without --entity-features" in message


def test_the_gateway_refuses_at_start_to_serve_an_entity_model_without_the_entity_table(
    tmp_path: Path,
) -> None:
    settings = Settings(model_path=str(artifact(tmp_path / "v2", {}, {"entity_features": True})))
    assert not settings.entity_table, "ENTITY_TABLE is off by default"
    runtime = GatewayRuntime(settings, async_pool(settings.db_url), BackgroundHealth())  # pool never opened
    with pytest.raises(ConfigurationError, match="card-fraud:v2 was trained with the entity-risk features"):
        asyncio.run(runtime.reload_routing())
    assert runtime.decider is None


class RemoteModelServer:
    """A stand-in for a RemoteScorer (a KServe predictor over HTTP): it holds no artifact, as in a cluster."""

    model_version = "v2"
    threshold = 0.5
    extra_fields = NO_EXTRA_FIELDS

    def score(self, features: np.ndarray) -> np.ndarray:
        return np.zeros(len(features), dtype=np.float32)

    def reasons(self, features: np.ndarray, top_k: int = 3, exact: bool = True) -> list:
        return [[] for _ in features]


def remote_decider(features: TrainedFeatures | None) -> Decider:
    table = RoutingTable(
        variants=[
            Variant(name="stable", model_version="v2", endpoint="http://predictor", features=features),
        ]
    )
    return Decider(table, {"stable": RemoteModelServer()}, "test")


def test_a_remote_variant_is_served_as_the_routing_table_declares_it_was_trained() -> None:
    """The operator's consumers score remotely: the table's declaration is all they know of the model."""
    declared = TrainedFeatures(entity_features=True, **FIVE_DAYS.as_dict())

    served = remote_decider(declared)

    assert served.feature_config() == FIVE_DAYS
    assert served.needs_entity_table() == ["card-fraud:v2"]
    with pytest.raises(ConfigurationError, match="card-fraud:v2 was trained with the entity-risk features"):
        served.refuse_without_entity_table(entity_table=False)
    assert remote_decider(None).feature_config() is None, "a table that declares nothing: unknown, as before"
    assert remote_decider(None).needs_entity_table() == []


def test_a_local_artifact_that_contradicts_its_declaration_is_refused(tmp_path: Path) -> None:
    model = artifact(tmp_path / "v1", FIVE_DAYS.as_dict(), {"entity_features": True})
    declared = TrainedFeatures(entity_features=False, **FIVE_DAYS.as_dict())
    table = RoutingTable(
        variants=[Variant(name="stable", model_version="v1", model_uri=str(model), features=declared)]
    )

    with pytest.raises(ConfigurationError, match="was trained with the entity features, label delay 5 d"):
        Decider.from_table(table, "test").feature_config()


def test_a_routing_table_declaring_settings_the_engines_refuse_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(
        "variants:\n- {name: stable, model_version: v1, endpoint: 'http://p', "
        "features: {entity_features: true, label_delay_s: 2592000}}\n"
    )

    with pytest.raises(ConfigurationError, match="label delay must be between 0 and 9 days"):
        load_routing_table(path)


def test_the_predictor_refuses_an_artifact_trained_otherwise_than_declared(tmp_path: Path) -> None:
    model = artifact(tmp_path / "v1", FIVE_DAYS.as_dict(), {"entity_features": True})
    declared = TrainedFeatures(entity_features=True, **FIVE_DAYS.as_dict())
    FraudPredictor("card-fraud", str(model), declared).load()  # as declared: served

    undeclared = FraudPredictor("card-fraud", str(model), TrainedFeatures())
    with pytest.raises(ConfigurationError) as refused:
        undeclared.load()

    assert "card-fraud:v1" in str(refused.value) and "spec.stable/candidate.features" in str(refused.value)
    assert undeclared.scorer is None and not undeclared.ready
