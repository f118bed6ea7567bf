"""Model artifacts: a versioned folder any fraudops service (and KServe's XGBoost runtime) can load.

    <root>/<name>/<version>/
        model.ubj        the XGBoost booster — the only model file, as KServe's xgbserver requires
        metadata.yaml    feature names and version, threshold and its rule, metrics, data fingerprint,
                         library versions; for a model with extra inputs, their schema extension
                         (`extra_inputs`: names, kinds, learned category codes, encoding version)
        report/          report.html, metrics.json, holdout_predictions.parquet, optuna_trials.csv

An artifact is addressed by a local path or a storage URI: `file://`, `pvc://<claim>/<path>`
(mounted at /mnt/pvc as KServe does) or any fsspec URI such as `s3://bucket/prefix`.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import xgboost as xgb
import yaml

from fraudops.errors import ConfigurationError
from fraudops.extras import ExtraInputs
from fraudops.features.spec import FEATURE_NAMES, FEATURE_VERSION

MODEL_FILE = "model.ubj"
METADATA_FILE = "metadata.yaml"
BOOSTER_EXTENSIONS = (".bst", ".json", ".ubj")  # what KServe's xgbserver treats as model files
PVC_MOUNT = Path("/mnt/pvc")


@dataclass
class ModelMetadata:
    name: str
    version: str
    feature_names: list[str]
    feature_version: int
    threshold: float
    threshold_rule: str
    created_at: str
    metrics: dict[str, Any] = field(default_factory=dict)
    feature_config: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    libraries: dict[str, str] = field(default_factory=dict)
    #: columns beyond the built-in features (`fraudops.extras.ExtraInputs.as_dict`); empty for most models
    extra_inputs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ModelArtifact:
    """A loaded artifact: the booster plus what it needs to be served correctly."""

    path: Path
    metadata: ModelMetadata
    booster: xgb.Booster

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def version(self) -> str:
        return self.metadata.version


def save_artifact(folder: Path, booster: xgb.Booster, metadata: ModelMetadata) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    # KServe's xgbserver predicts on unnamed arrays, which XGBoost refuses for a booster with feature
    # names: the file keeps none, and the names (in column order) live in metadata.yaml.
    unnamed = booster.copy()
    unnamed.feature_names = None
    unnamed.feature_types = None
    unnamed.save_model(str(folder / MODEL_FILE))
    (folder / METADATA_FILE).write_text(yaml.safe_dump(metadata.to_dict(), sort_keys=False))
    return folder


def resolve_uri(uri: str, cache_dir: Path = Path(".cache/artifacts")) -> Path:
    """A local folder holding the artifact at `uri`, downloading remote ones into `cache_dir` once."""
    if uri.startswith("file://"):
        return Path(uri[len("file://") :])
    if uri.startswith("pvc://"):
        return PVC_MOUNT / uri[len("pvc://") :].split("/", 1)[-1]
    if "://" not in uri:
        return Path(uri)
    target = cache_dir / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if (target / METADATA_FILE).exists():
        return target
    try:
        fs, root = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise ConfigurationError(f"cannot open model URI {uri!r}: {exc}") from exc
    partial = target.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    fs.get(root.rstrip("/") + "/", str(partial), recursive=True)
    partial.rename(target)
    return target


def load_artifact(uri: str, nthread: int = 1) -> ModelArtifact:
    """Load and check an artifact: exactly one model file, metadata present, features of this version,
    extra inputs (if any) encoded as this build encodes them."""
    folder = resolve_uri(uri)
    if not folder.is_dir():
        raise ConfigurationError(
            f"model artifact {uri!r} not found (looked in {folder}); train one with "
            "`fraudops train` or set MODEL_PATH"
        )
    model_files = [p for p in folder.iterdir() if p.is_file() and p.name.endswith(BOOSTER_EXTENSIONS)]
    if len(model_files) != 1:
        raise ConfigurationError(
            f"{folder} must hold exactly one model file ({', '.join(BOOSTER_EXTENSIONS)}); "
            f"found {len(model_files)}: {[p.name for p in model_files]}"
        )
    metadata_path = folder / METADATA_FILE
    if not metadata_path.exists():
        raise ConfigurationError(f"{folder} has no {METADATA_FILE}: it was not written by `fraudops train`")
    metadata = ModelMetadata(**yaml.safe_load(metadata_path.read_text()))
    try:
        extras = ExtraInputs.from_dict(metadata.extra_inputs)
    except ConfigurationError as exc:
        raise ConfigurationError(f"model {metadata.name}:{metadata.version}: {exc}") from exc
    if metadata.feature_version != FEATURE_VERSION or list(metadata.feature_names) != [
        *FEATURE_NAMES,
        *extras.names,
    ]:
        raise ConfigurationError(
            f"model {metadata.name}:{metadata.version} was trained on feature version {metadata.feature_version}; "
            f"this build computes version {FEATURE_VERSION}: retrain it"
        )
    booster = xgb.Booster(params={"nthread": nthread}, model_file=str(model_files[0]))
    return ModelArtifact(path=folder, metadata=metadata, booster=booster)
