"""Settings from the environment (and an optional `.env` file), with local defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the platform. Environment variable = field name in upper case."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- where things run -------------------------------------------------------------
    db_url: str = Field(
        "postgresql://fraudops@127.0.0.1:55432/fraudops",
        description="PostgreSQL connection URL (libpq form). Put passwords in the environment, never in code.",
    )
    db_pool_min_size: int = Field(1, ge=0)
    db_pool_max_size: int = Field(8, ge=1)
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:19092", description="Kafka bootstrap servers, comma-separated."
    )
    transactions_topic: str = "transactions"
    alerts_topic: str = "fraud-alerts"
    dlq_topic: str = "transactions.dlq"
    transactions_partitions: int = Field(6, ge=1)
    consumer_group: str = "fraud-scorer"

    # --- scoring ------------------------------------------------------------------------
    fraud_threshold: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Score at or above which a decision is fraud. When not set in the environment, each "
        "model's own threshold (chosen by its training rule and stored in the artifact) applies.",
    )
    batch_size: int = Field(100, ge=1, description="Records per consumer batch / rows per scoring call.")
    model_path: str = Field(
        "artifacts/models/latest",
        description="Model artifact: a local folder, or a pvc:// / s3:// / file:// storage URI.",
    )

    routing_table_path: Path | None = Field(
        None,
        description="Routing table (YAML) written by the operator; default: MODEL_PATH serves everything.",
    )
    state_refresh_s: float = Field(
        5.0, gt=0, description="Gateway: every this many seconds, re-read the stored states that changed."
    )

    # --- gateway -----------------------------------------------------------------------------
    gateway_api_keys: str = Field("", description="Comma-separated API keys; empty turns authentication off.")
    gateway_rate_limit: str = Field(
        "2000/second", description="Per-client limit (limits syntax, e.g. 100/second)."
    )
    gateway_max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest request body accepted.")
    gateway_max_batch: int = Field(1000, ge=1, description="Most transactions in one /predict/batch call.")
    gateway_persist_queue: int = Field(
        10_000, ge=10, description="Decisions waiting for PostgreSQL (backpressure)."
    )
    gateway_max_customers: int = Field(
        500_000,
        ge=100,
        description="Customers whose state the gateway holds (~3.8 KB each); the least "
        "recently seen are dropped beyond it and re-read from the state store when they come back.",
    )

    # --- local infrastructure (fraudops infra up) ----------------------------------------
    run_dir: Path = Field(Path(".run"), description="Databases, logs and pid files of local processes.")
    cache_dir: Path = Field(
        Path(".cache"), description="Downloaded jars and built binaries, reused across runs."
    )
    postgres_port: int = Field(55432, ge=1, le=65535)
    kafka_port: int = Field(19092, ge=1, le=65535)
    kafka_controller_port: int = Field(19093, ge=1, le=65535)
    kafka_version: str = "4.1.1"
    kafka_heap: str = "1G"

    # --- observability ------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
