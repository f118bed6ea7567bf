"""The model registry in PostgreSQL: which versions exist, where their artifacts are, and their status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from fraudops.artifact import ModelMetadata

STATUSES = ("candidate", "canary", "stable", "retired")


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    uri: str
    status: str
    threshold: float | None
    metrics: dict[str, Any]


def register(db_url: str, metadata: ModelMetadata, uri: str, status: str = "candidate") -> None:
    """Insert (or refresh) a model version; re-registering the same version is harmless."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO model_versions (name, version, uri, status, threshold, feature_version, metrics)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (name, version) DO UPDATE SET uri = EXCLUDED.uri, threshold = EXCLUDED.threshold,
                   metrics = EXCLUDED.metrics, feature_version = EXCLUDED.feature_version, updated_at = now()""",
            (
                metadata.name,
                metadata.version,
                uri,
                status,
                metadata.threshold,
                metadata.feature_version,
                Jsonb(metadata.metrics),
            ),
        )


def set_status(db_url: str, name: str, version: str, status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
    with psycopg.connect(db_url, autocommit=True) as conn:
        updated = conn.execute(
            "UPDATE model_versions SET status = %s, updated_at = now() WHERE name = %s AND version = %s",
            (status, name, version),
        ).rowcount
    if updated != 1:
        raise LookupError(f"model {name}:{version} is not registered")


def get(db_url: str, name: str, version: str) -> RegisteredModel | None:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT name, version, uri, status, threshold, metrics FROM model_versions WHERE name = %s AND version = %s",
            (name, version),
        ).fetchone()
    return RegisteredModel(*row) if row else None
