"""A model for local runs: the one at MODEL_PATH, or one trained on simulated history when there is none."""

from __future__ import annotations

from rich.console import Console

from fraudops.config import Settings


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
    from fraudops_simulator import SimulationConfig, simulate, write_tables
    from fraudops_training.pipeline import TrainingConfig, run_training

    history = settings.run_dir / "demo" / "history.parquet"
    with console.status("simulating 400,000 transactions of history…"):
        write_tables(simulate(SimulationConfig(transactions=400_000, days=75, seed=1)), history)
    result = run_training(TrainingConfig(data=history, trials=12, timeout_s=150), console)
    return str(result.artifact_dir)
