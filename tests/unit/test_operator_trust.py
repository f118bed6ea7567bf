"""The operator's image allow-list (pure): which references an entry allows, and the refusal message."""

from __future__ import annotations

from fraudops_operator.settings import OperatorSettings
from fraudops_operator.trust import ImagePolicy


def test_a_repository_prefix_allows_its_images_at_any_tag_or_digest() -> None:
    policy = ImagePolicy.parse("ghcr.io/fraudops/")
    assert policy.allows("ghcr.io/fraudops/predictor:0.2.0")
    assert policy.allows("ghcr.io/fraudops/fraudops@sha256:" + "0" * 64)


def test_a_prefix_does_not_allow_a_lookalike_registry_path() -> None:
    policy = ImagePolicy.parse("ghcr.io/fraudops")
    assert policy.allows("ghcr.io/fraudops/predictor:1")
    assert not policy.allows("ghcr.io/fraudops-mirror/predictor:1")
    assert not policy.allows("ghcr.io/fraudopsx:1")


def test_an_exact_reference_allows_only_that_tag() -> None:
    policy = ImagePolicy.parse("registry.bank.example/fraud/predictor:2.1")
    assert policy.allows("registry.bank.example/fraud/predictor:2.1")
    assert not policy.allows("registry.bank.example/fraud/predictor:2.10")


def test_star_allows_everything_and_an_empty_list_nothing() -> None:
    assert ImagePolicy.parse(" * ").allows("docker.io/anything:latest")
    assert not ImagePolicy.parse(" , ").allows("ghcr.io/fraudops/fraudops:0.1.0")


def test_the_refusal_names_each_refused_role_and_the_allow_list() -> None:
    policy = ImagePolicy.parse("ghcr.io/fraudops/, registry.bank.example/")
    message = policy.refusal(
        {"predictor": "ghcr.io/fraudops/predictor:1", "consumer": "evil.example/miner:1"}
    )
    assert message == (
        "consumer image 'evil.example/miner:1' not allowed by the operator's image allow-list "
        "(ghcr.io/fraudops/, registry.bank.example/)"
    )
    assert policy.refusal({"predictor": "registry.bank.example/p:1"}) is None


def test_the_default_setting_allows_the_images_the_crd_defaults_name(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from fraudops_operator.crd import DEFAULT_APP_IMAGE, DEFAULT_PREDICTOR_IMAGE

    monkeypatch.delenv("FRAUDOPS_OPERATOR_ALLOWED_IMAGES", raising=False)
    policy = OperatorSettings().image_policy
    assert policy.allows(DEFAULT_APP_IMAGE) and policy.allows(DEFAULT_PREDICTOR_IMAGE)
    monkeypatch.setenv("FRAUDOPS_OPERATOR_ALLOWED_IMAGES", "registry.bank.example/")
    assert not OperatorSettings().image_policy.allows(DEFAULT_APP_IMAGE)
