"""Settings: nothing surprising comes from a file, and a bad value is refused when the settings are read."""

from __future__ import annotations

from pathlib import Path

import pytest
from dotenv import dotenv_values

from fraudops.config import ENV_FILE_VARIABLE, Settings, load_settings
from fraudops.errors import ConfigurationError
from tests.conftest import REPO_ROOT


def test_tests_never_read_a_developers_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("FRAUD_THRESHOLD=0.9\nGATEWAY_RATE_LIMIT=1/second\n")
    monkeypatch.chdir(tmp_path)

    settings = Settings()

    assert settings.fraud_threshold is None and settings.gateway_rate_limit == "2000/second"


def test_the_file_named_by_fraudops_env_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    named = tmp_path / "staging.env"
    named.write_text("GATEWAY_RATE_LIMIT=10/second\n")
    monkeypatch.setenv(ENV_FILE_VARIABLE, str(named))

    assert Settings().gateway_rate_limit == "10/second"


def test_the_fraud_threshold_is_unset_unless_an_operator_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().fraud_threshold is None, "each model's own threshold applies by default"
    monkeypatch.setenv("FRAUD_THRESHOLD", "0.35")
    assert Settings().fraud_threshold == 0.35


def test_env_example_sets_nothing_but_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Copying `.env.example` to `.env` changes nothing, in particular it overrides no model's threshold."""
    example = REPO_ROOT / ".env.example"
    monkeypatch.setenv(ENV_FILE_VARIABLE, str(example))

    from_example = Settings()

    assert "fraud_threshold" not in from_example.model_fields_set and from_example.fraud_threshold is None
    assert from_example.model_dump() == Settings(_env_file=None).model_dump()
    listed = {name.lower() for name in dotenv_values(example)}
    assert listed <= set(Settings.model_fields), listed - set(Settings.model_fields)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("GATEWAY_RATE_LIMIT", "fast", "GATEWAY_RATE_LIMIT='fast': Value error, not a rate limit"),
        (
            "GATEWAY_TRUSTED_PROXIES",
            "10.0.0.1, proxy.local",
            "GATEWAY_TRUSTED_PROXIES='10.0.0.1, proxy.local'",
        ),
        ("FRAUD_THRESHOLD", "1.5", "FRAUD_THRESHOLD='1.5': Input should be less than or equal to 1"),
    ],
)
def test_an_invalid_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigurationError) as raised:
        load_settings()

    message = str(raised.value)
    assert "\n" not in message and expected in message, message
