"""RoutingTable.route: the pure function every gateway and consumer replica uses to pick a variant."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fraudops.errors import ConfigurationError
from fraudops.routing import RoutingTable, Variant, VariantMode, load_routing_table


def table(*variants: Variant, salt: str = "") -> RoutingTable:
    return RoutingTable(model_name="card-fraud", salt=salt, variants=list(variants))


def serve(name: str, weight: float, mode: VariantMode = VariantMode.SERVE) -> Variant:
    return Variant(
        name=name, model_version=f"{name}-v1", weight=weight, mode=mode, model_uri=f"/models/{name}"
    )


def ids(prefix: str, count: int) -> np.ndarray:
    return np.asarray([f"{prefix}-{i}" for i in range(count)], dtype=object)


def test_a_single_variant_decides_everything() -> None:
    routed = table(serve("stable", 100)).route(ids("tx", 50), ids("c", 50))

    assert routed.tolist() == [0] * 50


@pytest.mark.parametrize("salt", ["", "rollout-7"])
def test_a_90_10_canary_splits_transactions_within_2_percent(salt: str) -> None:
    routed = table(serve("stable", 90), serve("canary", 10), salt=salt).route(
        ids("tx", 10_000), ids("c", 10_000)
    )

    assert abs(np.mean(routed == 1) - 0.10) <= 0.02


def test_canary_routing_is_per_transaction_and_deterministic() -> None:
    canary = table(serve("stable", 50), serve("canary", 50))
    customers = np.asarray(["same-customer"] * 1000, dtype=object)

    first = canary.route(ids("tx", 1000), customers)
    again = canary.route(ids("tx", 1000), customers)

    assert np.array_equal(first, again), "every replica routes a transaction the same way"
    assert 0.4 <= first.mean() <= 0.6, "one customer's transactions spread over both variants"


def test_ab_routing_keeps_each_customer_on_one_variant() -> None:
    ab = table(serve("a", 50, VariantMode.AB), serve("b", 50, VariantMode.AB))
    customers = np.asarray([f"c-{i % 300}" for i in range(6000)], dtype=object)

    routed = ab.route(ids("tx", 6000), customers)

    per_customer: dict[str, set[int]] = {}
    for customer, index in zip(customers, routed, strict=True):
        per_customer.setdefault(customer, set()).add(int(index))
    assert all(len(seen) == 1 for seen in per_customer.values())
    assert 0.4 <= np.mean([seen.pop() for seen in per_customer.values()]) <= 0.6


def test_ab_routing_of_anonymous_transactions_falls_back_to_the_transaction() -> None:
    ab = table(serve("a", 50, VariantMode.AB), serve("b", 50, VariantMode.AB))

    routed = ab.route(ids("tx", 2000), np.asarray([None] * 2000, dtype=object))

    assert 0.4 <= routed.mean() <= 0.6


def test_the_salt_reshuffles_who_goes_where() -> None:
    transactions, customers = ids("tx", 2000), ids("c", 2000)

    plain = table(serve("stable", 50), serve("canary", 50)).route(transactions, customers)
    salted = table(serve("stable", 50), serve("canary", 50), salt="next").route(transactions, customers)

    assert 0.4 <= np.mean(plain != salted) <= 0.6


def test_a_zero_weight_variant_gets_nothing_and_shadows_are_never_routed() -> None:
    routing = table(
        serve("stable", 100),
        serve("canary", 0),
        Variant(name="challenger", model_version="c", mode=VariantMode.SHADOW, endpoint="http://x"),
    )

    routed = routing.route(ids("tx", 5000), ids("c", 5000))

    assert routed.tolist() == [0] * 5000
    assert [v.name for v in routing.deciding] == ["stable", "canary"]
    assert [v.name for v in routing.shadows] == ["challenger"]


def test_growing_the_canary_only_moves_transactions_towards_it() -> None:
    transactions, customers = ids("tx", 5000), ids("c", 5000)

    at_10 = table(serve("stable", 90), serve("canary", 10)).route(transactions, customers)
    at_25 = table(serve("stable", 75), serve("canary", 25)).route(transactions, customers)

    assert np.all(at_25[at_10 == 1] == 1), "a transaction on the canary at 10% stays there at 25%"


def test_three_variants_split_by_their_weights() -> None:
    routed = table(serve("stable", 60), serve("canary", 30), serve("canary-b", 10)).route(
        ids("tx", 20_000), ids("c", 20_000)
    )

    shares = np.bincount(routed, minlength=3) / len(routed)
    np.testing.assert_allclose(shares, [0.6, 0.3, 0.1], atol=0.02)


def test_an_empty_batch_routes_to_nothing() -> None:
    routing = table(serve("stable", 90), serve("canary", 10))

    assert routing.route(np.asarray([], dtype=object), np.asarray([], dtype=object)).tolist() == []


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ([serve("stable", 90)], "must sum to 100"),
        ([serve("stable", 50), serve("b", 50, VariantMode.AB)], "all be `serve`"),
        (
            [Variant(name="s", model_version="v", mode=VariantMode.SHADOW, model_uri="/m")],
            "at least one serve or ab",
        ),
        ([serve("stable", 50), serve("stable", 50)], "unique"),
    ],
)
def test_incoherent_tables_are_refused(variants: list[Variant], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        table(*variants)


def test_a_variant_needs_a_model_uri_or_an_endpoint() -> None:
    with pytest.raises(ValueError, match="needs a model_uri or an endpoint"):
        Variant(name="stable", model_version="v")


def test_a_routing_table_file_is_read_and_a_bad_one_is_a_configuration_error(tmp_path: Path) -> None:
    good = tmp_path / "routing.yaml"
    good.write_text(
        "model_name: card-fraud\nvariants:\n"
        "  - {name: stable, model_version: v1, weight: 95, model_uri: /m/v1}\n"
        "  - {name: canary, model_version: v2, weight: 5, endpoint: 'http://predictor:8080'}\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("variants: [{name: stable, model_version: v1, weight: 50, model_uri: /m}]\n")

    loaded = load_routing_table(good)

    assert [(v.name, v.weight, v.endpoint) for v in loaded.variants] == [
        ("stable", 95, None),
        ("canary", 5, "http://predictor:8080"),
    ]
    with pytest.raises(ConfigurationError, match="weights of deciding variants must sum to 100"):
        load_routing_table(bad)
    with pytest.raises(ConfigurationError, match="cannot read routing table"):
        load_routing_table(tmp_path / "missing.yaml")
