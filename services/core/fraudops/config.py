"""Settings from the environment (and an optional `.env` file), with local defaults.

Every value is checked when the settings are read, so a bad one stops a process at start with one
line naming the variable (`load_settings`), never later in a request or a background task.
"""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from limits import parse
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from fraudops.errors import ConfigurationError

#: Names the settings file to read instead of `.env` in the working directory; set but empty, none is
#: read. The test suite sets it empty, so a developer's own `.env` never changes what the tests check.
ENV_FILE_VARIABLE = "FRAUDOPS_ENV_FILE"


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
    kafka_debug: str = Field(
        "",
        description="librdkafka debug contexts for every client, e.g. `cgrp,consumer` to see the group's "
        "rebalances (to stderr; empty: off).",
    )

    # --- Kafka security (every client: consumer, producers, admin, simulator; fraudops.kafka) -------
    # On a cluster the operator sets these from the FraudModel's spec.stream.authentication and tls, the
    # secrets from Kubernetes Secrets (a Strimzi KafkaUser's `password`, the cluster CA's `ca.crt`).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How clients talk to the broker: TLS (SSL), SASL, both, or neither."
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512",
        description="SASL mechanism (SASL_* protocols); Strimzi's `scram-sha-512` KafkaUsers use the default.",
    )
    kafka_sasl_username: str = Field("", description="SASL user (a Strimzi KafkaUser's name).")
    kafka_sasl_password: SecretStr = Field(SecretStr(""), description="SASL password; never logged.")
    kafka_ssl_ca_pem: str = Field(
        "",
        description="PEM certificate(s) of the CA that signed the broker's certificate (SSL, SASL_SSL); "
        "empty: the system's CAs.",
    )
    kafka_ssl_certificate_pem: str = Field(
        "", description="Client certificate, PEM, for mutual TLS (a Strimzi `tls` KafkaUser's user.crt)."
    )
    kafka_ssl_key_pem: SecretStr = Field(
        SecretStr(""), description="The client certificate's private key, PEM (user.key); never logged."
    )

    # --- scoring ------------------------------------------------------------------------
    fraud_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Score at or above which a decision is fraud, for every model. Unset (the default), each "
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
    entity_table: bool = Field(
        False,
        description="Read the entity features (merchant, terminal, device, IP, beneficiary risk) from the table "
        "the entity-state component publishes (`fraudops stream entities` must run). The stream consumer then "
        "waits for the component to reach each record's epoch; the gateway reads the newest table. Off: the "
        "entity features are unknown (NaN) online, and a model trained with them (--entity-features) is refused.",
    )

    # --- gateway -----------------------------------------------------------------------------
    gateway_api_keys: str = Field("", description="Comma-separated API keys; empty turns authentication off.")
    gateway_rate_limit: str = Field(
        "2000/second", description="Per-client limit (limits syntax, e.g. 100/second)."
    )
    gateway_trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses or networks (CIDR) of the proxies in front of the gateway. "
        "Only a request from one of them has its X-Forwarded-For read for the client's address (the "
        "rate-limit identity without API keys); empty: the peer's own address, always.",
    )
    gateway_max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest request body accepted.")
    gateway_max_batch: int = Field(1000, ge=1, description="Most transactions in one /predict/batch call.")
    gateway_persist_queue: int = Field(
        10_000, ge=10, description="Decisions waiting for PostgreSQL (backpressure)."
    )
    feedback_label_delay_s: float = Field(
        7 * 86_400,
        ge=0,
        description="Gateway: how long fraud labels take to arrive; precision and recall are read over "
        "decisions at least this old (fraudops.feedback_quality).",
    )
    feedback_cohort_s: float = Field(
        86_400, gt=0, description="Gateway: the span of decision times judged by precision and recall."
    )
    feedback_quality_interval_s: float = Field(
        300, gt=0, description="Gateway: every this many seconds, recount precision and recall on feedback."
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
    kafka_scram_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Local broker: also listen with SASL/SCRAM-SHA-512 on this port (users are added with "
        "`LocalKafka.add_scram_user`); unset: no SASL listener.",
    )
    kafka_version: str = "4.1.1"
    kafka_heap: str = "1G"

    # --- observability ------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    @field_validator("gateway_rate_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(
                "not a rate limit; write it as `amount/unit` or `amount per n units`, e.g. "
                "2000/second or 100 per 5 minutes"
            ) from exc
        return value

    @field_validator("gateway_trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: str) -> str:
        trusted_networks(value)
        return value

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> Settings:
        problem = kafka_security_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        env_file = os.environ.get(ENV_FILE_VARIABLE)
        if env_file is not None:
            dotenv_settings = DotEnvSettingsSource(settings_cls, env_file=env_file or None)
        return init_settings, env_settings, dotenv_settings, file_secret_settings


def trusted_networks(addresses: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """GATEWAY_TRUSTED_PROXIES as networks (a single address is a network of one)."""
    networks = []
    for text in (part.strip() for part in addresses.split(",")):
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ValueError(
                f"{text!r} is not an IP address or network (e.g. 10.0.0.7 or 10.0.0.0/8)"
            ) from exc
    return tuple(networks)


def kafka_security_problem(settings: Settings) -> str | None:
    """Why the Kafka security settings cannot work together, or None. A credential that the protocol would
    ignore is refused too: it means the protocol was forgotten, and the client would connect without it."""
    protocol = settings.kafka_security_protocol
    sasl, tls = protocol.startswith("SASL_"), protocol in ("SSL", "SASL_SSL")
    has_password = bool(settings.kafka_sasl_password.get_secret_value())
    if sasl and not (settings.kafka_sasl_username and has_password):
        return (
            f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD "
            "(a Strimzi KafkaUser's name, and the `password` of its Secret)"
        )
    if not sasl and (settings.kafka_sasl_username or has_password):
        return (
            f"KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD are set but KAFKA_SECURITY_PROTOCOL={protocol} "
            "sends no credentials: set it to SASL_PLAINTEXT or SASL_SSL"
        )
    has_key = bool(settings.kafka_ssl_key_pem.get_secret_value())
    ssl_set = [
        name
        for name, value in (
            ("KAFKA_SSL_CA_PEM", settings.kafka_ssl_ca_pem),
            ("KAFKA_SSL_CERTIFICATE_PEM", settings.kafka_ssl_certificate_pem),
            ("KAFKA_SSL_KEY_PEM", has_key),
        )
        if value
    ]
    if ssl_set and not tls:
        return (
            f"{' and '.join(ssl_set)} set but KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS: "
            "set it to SSL or SASL_SSL"
        )
    if bool(settings.kafka_ssl_certificate_pem) != has_key:
        return (
            "KAFKA_SSL_CERTIFICATE_PEM and KAFKA_SSL_KEY_PEM go together (a client certificate and its key)"
        )
    return None


def describe_invalid_settings(exc: ValidationError) -> str:
    """One line naming each bad variable, its value and the rule it broke."""
    problems = []
    for problem in exc.errors(include_url=False):
        variable = "_".join(str(part) for part in problem["loc"]).upper()
        if not variable:  # a rule over several variables: its message names them
            problems.append(problem["msg"].removeprefix("Value error, "))
            continue
        value = problem.get("input")
        shown = "" if isinstance(value, dict) else f"={value!r}" if isinstance(value, str) else f"={value}"
        problems.append(f"{variable}{shown}: {problem['msg']}")
    return "invalid setting " + "; ".join(problems) + " (fix the environment or the .env file)"


def load_settings() -> Settings:
    """The settings from the environment; `ConfigurationError` with one line if a value is invalid."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError(describe_invalid_settings(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once (`ConfigurationError` naming the variable if one is invalid)."""
    return load_settings()
