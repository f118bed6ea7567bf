"""A model for local runs: the one at MODEL_PATH, or one trained on simulated history when there is none."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from fraudops.config import Settings


def _demo_history(settings: Settings, console: Console) -> Path:
    """400,000 simulated transactions over 75 days (written once, reused)."""
    from fraudops_simulator import SimulationConfig, simulate, write_tables

    history = settings.run_dir / "demo" / "history.parquet"
    if not history.exists():
        with console.status("simulating 400,000 transactions of history…"):
            write_tables(simulate(SimulationConfig(transactions=400_000, days=75, seed=1)), history)
    return history


def ensure_model(settings: Settings, console: Console) -> str:
    """The artifact folder to serve; trains one (about 3 minutes) when MODEL_PATH holds none."""
    from fraudops.artifact import load_artifact
    from fraudops.errors import ConfigurationError

    try:
        return str(load_artifact(settings.model_path).path)
    except ConfigurationError:
        console.print(
            f"[yellow]no model at {settings.model_path}[/]: training one on simulated history "
            "(about 3 minutes)"
        )
    from fraudops_training.pipeline import TrainingConfig, run_training

    history = _demo_history(settings, console)
    result = run_training(TrainingConfig(data=history, trials=12, timeout_s=150), console)
    return str(result.artifact_dir)


def ensure_entity_model(settings: Settings, console: Console) -> str:
    """A model trained on the entity-risk features, for runs with the entity-state component: the newest
    under `<run_dir>/entity-models`, trained there (about 3 minutes) on first use."""
    from fraudops.artifact import load_artifact
    from fraudops.errors import ConfigurationError
    from fraudops.features.spec import FeatureConfig

    root = settings.run_dir / "entity-models"
    try:
        artifact = load_artifact(str(root / "latest"))
    except ConfigurationError:
        console.print(f"[yellow]no entity-feature model under {root}[/]: training one (about 3 minutes)")
    else:
        if FeatureConfig.from_dict(artifact.metadata.feature_config) == FeatureConfig():
            return str(artifact.path)
        # trained by an older build (another entity lag, say): measure what this build trains
        console.print(
            f"[yellow]the entity-feature model under {root} was trained with "
            f"{artifact.metadata.feature_config}[/]: training one with this build's defaults"
        )
    from fraudops_training.pipeline import TrainingConfig, run_training

    config = TrainingConfig(
        data=_demo_history(settings, console),
        output_root=root,
        trials=12,
        timeout_s=150,
        entity_features=True,
    )
    return str(run_training(config, console).artifact_dir)
