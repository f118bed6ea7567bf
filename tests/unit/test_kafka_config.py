"""Kafka client configuration from Settings (fraudops.kafka): one place for every client, secrets never shown,
and a security setting that cannot work is refused at start with one line naming the variables."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from fraudops.config import Settings, load_settings
from fraudops.errors import ConfigurationError
from fraudops.kafka import KafkaAuthenticationError, client_config, redacted, security_config

SCRAM = {
    "KAFKA_SECURITY_PROTOCOL": "sasl_plaintext",
    "KAFKA_SASL_USERNAME": "fraudops-consumer",
    "KAFKA_SASL_PASSWORD": "s3cret-from-the-kafkauser",
}


def settings_from(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def test_plaintext_by_default_with_no_credentials() -> None:
    assert security_config(Settings()) == {"security.protocol": "plaintext"}


def test_scram_settings_become_librdkafka_sasl_properties(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(monkeypatch, **SCRAM)

    config = client_config(settings, **{"group.id": "g"})

    assert config["security.protocol"] == "sasl_plaintext"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512", "Strimzi's scram-sha-512 users are the default"
    assert (config["sasl.username"], config["sasl.password"]) == (
        "fraudops-consumer",
        "s3cret-from-the-kafkauser",
    )
    assert config["group.id"] == "g" and config["bootstrap.servers"] == settings.kafka_bootstrap_servers


def test_a_client_override_cannot_drop_the_security_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(monkeypatch, **SCRAM)

    config = client_config(settings, **{"security.protocol": "plaintext"})

    assert config["security.protocol"] == "sasl_plaintext"


def test_tls_material_is_passed_as_pem(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(
        monkeypatch,
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_USERNAME="u",
        KAFKA_SASL_PASSWORD="p",
        KAFKA_SSL_CA_PEM="-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----",
    )

    assert security_config(settings)["ssl.ca.pem"].startswith("-----BEGIN CERTIFICATE-----")


def test_secrets_never_show_in_settings_or_a_logged_config(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(monkeypatch, **SCRAM)

    shown = f"{settings!r} {settings} {redacted(client_config(settings))}"

    assert "s3cret" not in shown
    assert redacted(client_config(settings))["sasl.password"] == "**********"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u"}, "KAFKA_SASL_PASSWORD"),
        ({"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "LEAK"}, "KAFKA_SECURITY_PROTOCOL=PLAINTEXT"),
        ({"KAFKA_SSL_CA_PEM": "pem"}, "KAFKA_SSL_CA_PEM"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTIFICATE_PEM": "pem"}, "KAFKA_SSL_KEY_PEM"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SCRAM"}, "KAFKA_SECURITY_PROTOCOL='SASL_SCRAM'"),
    ],
)
def test_an_incomplete_security_setting_is_one_line_naming_the_variables(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings_from(monkeypatch, **env)

    message = str(raised.value)
    assert "\n" not in message and named in message, message
    assert "LEAK" not in message, "no secret value in the message"


def test_a_refused_login_raises_from_the_client_call_naming_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_from(monkeypatch, **SCRAM)
    on_error = client_config(settings)["error_cb"]

    on_error(KafkaError(KafkaError._TRANSPORT, "broker down"))  # an outage: waited out, not raised
    with pytest.raises(KafkaAuthenticationError) as raised:
        on_error(
            KafkaError(KafkaError._AUTHENTICATION, "invalid credentials with SASL mechanism SCRAM-SHA-512")
        )

    message = str(raised.value)
    assert "KAFKA_SASL_USERNAME='fraudops-consumer'" in message and "KAFKA_SASL_PASSWORD" in message
    assert "s3cret" not in message
