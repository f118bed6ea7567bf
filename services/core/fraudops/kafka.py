"""Kafka client configuration from Settings: the one place every client gets its broker address and credentials.

The stream consumer, its producers (alerts, dead letters), the admin and group checks, the simulator's
producer and the benchmarks all start from `client_config(settings)`, so a broker that wants SASL/SCRAM or
TLS is configured once (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_*; `fraudops.config` checks that
they fit together). The password and the private key stay `SecretStr` until they are handed to librdkafka:
a logged Settings object or config dict shows no secret (`redacted`).

librdkafka retries a refused login forever, as it retries a broker that is down, so a wrong password
would look like an outage. `client_config` therefore installs an error callback that turns an
authentication failure into `KafkaAuthenticationError`, raised from the client call that served it
(`poll`, `consume`, `flush`): the process stops at once with one line naming the settings to fix.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError

from fraudops.config import Settings
from fraudops.errors import ConfigurationError

log = logging.getLogger(__name__)

#: Config keys whose values are secrets (never logged).
SECRET_KEYS = frozenset({"sasl.password", "ssl.key.pem"})


class KafkaAuthenticationError(ConfigurationError):
    """The broker refused the client's credentials: a human must fix the settings. Never retried."""


def client_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """librdkafka configuration for any client (Consumer, Producer, AdminClient) of the platform's broker;
    `overrides` are the client's own settings (group, batching...) and win over everything but security."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "error_cb": _authentication_watch(settings),
        **({"debug": settings.kafka_debug} if settings.kafka_debug else {}),
        **overrides,
    }
    return config | security_config(settings)


def security_config(settings: Settings) -> dict[str, str]:
    """The security part alone: protocol, SASL mechanism and credentials, TLS material."""
    protocol = settings.kafka_security_protocol
    config = {"security.protocol": protocol.lower()}
    if protocol.startswith("SASL_"):
        config |= {
            "sasl.mechanism": settings.kafka_sasl_mechanism,
            "sasl.username": settings.kafka_sasl_username,
            "sasl.password": settings.kafka_sasl_password.get_secret_value(),
        }
    if protocol in ("SSL", "SASL_SSL"):
        if settings.kafka_ssl_ca_pem:
            config["ssl.ca.pem"] = settings.kafka_ssl_ca_pem
        if settings.kafka_ssl_certificate_pem:
            config["ssl.certificate.pem"] = settings.kafka_ssl_certificate_pem
            config["ssl.key.pem"] = settings.kafka_ssl_key_pem.get_secret_value()
    return config


def redacted(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` fit for a log line: secrets replaced, callbacks named."""
    return {
        key: "**********" if key in SECRET_KEYS else getattr(value, "__name__", value)
        for key, value in config.items()
    }


def authentication_problem(settings: Settings, broker_message: str) -> str:
    """The one line a refused login ends with: what was refused, which settings to fix (no secret)."""
    if settings.kafka_security_protocol.startswith("SASL_"):
        who = (
            f"the {settings.kafka_sasl_mechanism} credentials of "
            f"KAFKA_SASL_USERNAME={settings.kafka_sasl_username!r}"
        )
        fix = "check KAFKA_SASL_PASSWORD (on Kubernetes: the `password` of the KafkaUser's Secret)"
    else:
        who = f"a {settings.kafka_security_protocol} connection"
        fix = "set KAFKA_SECURITY_PROTOCOL and KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD as the listener requires"
    return f"Kafka at {settings.kafka_bootstrap_servers} refused {who}: {fix} (broker: {broker_message})"


def _authentication_watch(settings: Settings) -> Any:
    def on_error(error: KafkaError) -> None:
        if error.code() == KafkaError._AUTHENTICATION:
            raise KafkaAuthenticationError(authentication_problem(settings, error.str()))
        # Anything else (a broker down, a timeout) librdkafka has logged itself and keeps retrying.
        log.debug("kafka client error", extra={"error": error.str()})

    on_error.__name__ = "raise_on_authentication_failure"
    return on_error
