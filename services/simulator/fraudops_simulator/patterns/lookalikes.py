"""Legit episodes that look like fraud on one signal or two: what keeps a detector honest.

Each twin copies part of a fraud signature and keeps the rest of the customer's habits (own
device, own IP, usual city, normal hours or familiar merchants), so a model must combine
signals instead of thresholding one. All rows here are legit (is_fraud = 0, no pattern name).
"""

from __future__ import annotations

import numpy as np

from fraudops_simulator.background import incoming_legs
from fraudops_simulator.params import DAY_S
from fraudops_simulator.patterns.kit import Kit, spread
from fraudops_simulator.rows import AUTH, CAT, Part, build_rows, n_rows


def _usual_shops(kit: Kit, customer: int) -> np.ndarray:
    c, m = kit.world.customers, kit.world.merchants
    usual = c.usual_merchants[customer, : c.n_usual[customer]]
    return usual[~m.is_online[usual]]


def shopping_spree(kit: Kit) -> list[Part] | None:
    """3–7 purchases in 1–3 hours in town (twin of burst_fraud), some at familiar shops."""
    c, m = kit.world.customers, kit.world.merchants
    found = kit.victim(4 * 3600.0, min_account_age_days=0.0)
    if found is None:
        return None
    customer, t0 = found
    k = int(kit.rng.integers(3, 8))
    t = spread(kit.rng, kit.at_local_hour(customer, t0, 10.0, 18.0), k, 300, 2400)
    shops = m.in_city(
        int(c.home_city[customer]), [CAT["RETAIL"], CAT["ELECTRONICS"], CAT["RESTAURANT"], CAT["GROCERY"]]
    )
    usual = _usual_shops(kit, customer)
    familiar = kit.rng.choice(usual if len(usual) else shops, k)
    merchant = np.where(kit.rng.random(k) < 0.4, familiar, kit.rng.choice(shops, k))
    amount = np.array([kit.typical_amount(customer, int(m.category[x])) for x in merchant]) * kit.rng.uniform(
        0.5, 3.0, k
    )
    return [
        kit.at_merchants(
            customer, t, merchant, np.round(amount, 2), card=int(c.cards[customer, 0]), fraud=False
        )
    ]


def night_out(kit: Kit) -> list[Part] | None:
    """Bars and a cash machine between 10 p.m. and 3 a.m. (twin of late_night_fraud)."""
    c, m = kit.world.customers, kit.world.merchants
    found = kit.victim(10 * 3600.0, min_account_age_days=0.0)
    if found is None:
        return None
    customer, t0 = found
    k = int(kit.rng.integers(2, 5))
    t = spread(kit.rng, kit.at_local_hour(customer, t0, 22.0, 26.5), k, 600, 3600)
    city = int(c.home_city[customer])
    venues = m.in_city(city, [CAT["RESTAURANT"], CAT["ENTERTAINMENT"]])
    merchant = kit.rng.choice(venues, k)
    merchant[kit.rng.integers(k)] = kit.rng.choice(m.in_city(city, [CAT["CASH"]]))
    cash = m.category[merchant] == CAT["CASH"]
    amount = np.where(cash, kit.amounts(40, 300, k, step=20), kit.amounts(8, 120, k))
    auth = np.where(cash & (kit.rng.random(k) < 0.1), AUTH["DECLINED_WRONG_PIN"], AUTH["APPROVED"])
    return [
        kit.at_merchants(
            customer, t, merchant, amount, card=int(c.cards[customer, 0]), fraud=False, auth=auth
        )
    ]


def decline_then_retry(kit: Kit) -> list[Part] | None:
    """One or two declines then a smaller or corrected retry (twin of overdraft_probing, card_testing)."""
    c, m = kit.world.customers, kit.world.merchants
    low = np.flatnonzero(c.balance_level == 0)
    found = kit.victim(3600.0, min_account_age_days=0.0, pool=low if len(low) else None)
    if found is None:
        return None
    customer, t0 = found
    card = int(c.cards[customer, 0])
    t = spread(kit.rng, kit.at_local_hour(customer, t0, 8.0, 21.0), 3, 20, 240)
    if kit.rng.random() < 0.6:  # at the till: not enough money, pay less
        shop = kit.rng.choice(
            m.in_city(int(c.home_city[customer]), [CAT["GROCERY"], CAT["RETAIL"], CAT["FUEL"], CAT["CASH"]])
        )
        first = kit.typical_amount(customer, int(m.category[shop])) * kit.rng.uniform(1.0, 3.0)
        k = 3 if kit.rng.random() < 0.3 else 2
        amount = np.round(first * np.array([1.0, 0.6, 0.35])[:k], 2)
        auth = np.array([AUTH["DECLINED_INSUFFICIENT_FUNDS"]] * (k - 1) + [AUTH["APPROVED"]])
        return [
            kit.at_merchants(
                customer, t[:k], shop, np.maximum(amount, 1.0), card=card, fraud=False, auth=auth
            )
        ]
    shop = kit.rng.choice(m.online([CAT["ONLINE_MARKETPLACE"], CAT["DIGITAL_GOODS"], CAT["RETAIL"]]))
    retry_amount = round(float(kit.typical_amount(customer, int(m.category[shop]))), 2)
    return [kit.online(
        customer, t[:2], retry_amount, device=kit.own_device(customer, t0), ip=kit.own_ip(customer, 2), city=None, fraud=False,
        merchant=shop, card=card, auth=np.array([AUTH["DECLINED_INVALID_CARD"], AUTH["APPROVED"]]),
    )]  # fmt: skip


def big_purchase(kit: Kit) -> list[Part] | None:
    """A sofa, a laptop, a holiday: 3–15x the usual amount (twin of amount_anomaly)."""
    c, m = kit.world.customers, kit.world.merchants
    found = kit.victim(3600.0, min_account_age_days=0.0)
    if found is None:
        return None
    customer, t0 = found
    category = int(
        kit.rng.choice([CAT["ELECTRONICS"], CAT["RETAIL"], CAT["TRAVEL"], CAT["JEWELRY"], CAT["HOTEL"]])
    )
    amount = min(round(kit.typical_amount(customer, category) * kit.rng.uniform(3, 15), 2), 12_000.0)
    t = kit.at_local_hour(customer, t0, 9.0, 21.0)
    if category in (CAT["TRAVEL"], CAT["HOTEL"]) or kit.rng.random() < 0.3:
        shop = kit.rng.choice(m.online([category]))
        return [kit.online(customer, t, amount, device=kit.own_device(customer, t), ip=kit.own_ip(customer), city=None,
                          fraud=False, merchant=shop, card=int(c.cards[customer, 0]))]  # fmt: skip
    shop = kit.rng.choice(m.in_city(int(c.home_city[customer]), [category]))
    return [kit.at_merchants(customer, t, shop, amount, card=int(c.cards[customer, 0]), fraud=False)]


def moving_house(kit: Kit) -> list[Part] | None:
    """Several large purchases over a few days, often on a young account (twin of bust_out, new_account_fraud)."""
    c, m = kit.world.customers, kit.world.merchants
    young = np.flatnonzero(c.opened_s > 0)
    pool = young if len(young) and kit.rng.random() < 0.4 else None
    found = kit.victim(4 * DAY_S, min_account_age_days=0.5, pool=pool)
    if found is None:
        return None
    customer, t0 = found
    k = int(kit.rng.integers(3, 9))
    t = np.sort(t0 + kit.rng.uniform(0, kit.rng.uniform(1, 4) * DAY_S, k))
    shops = m.in_city(int(c.home_city[customer]), [CAT["RETAIL"], CAT["ELECTRONICS"], CAT["OTHER"]])
    merchant = kit.rng.choice(shops, k)
    amount = np.array([kit.typical_amount(customer, int(m.category[x])) for x in merchant]) * kit.rng.uniform(
        2, 10, k
    )
    return [
        kit.at_merchants(
            customer, t, merchant, np.round(amount, 2), card=int(c.cards[customer, 0]), fraud=False
        )
    ]


def new_payee_payment(kit: Kit) -> list[Part] | None:
    """A large transfer to a new payee (a car, a deposit); sometimes just after a new phone and
    re-enrolment (twin of app_scam and account_takeover)."""
    c = kit.world.customers
    found = kit.victim(DAY_S, min_account_age_days=0.0)
    if found is None:
        return None
    customer, t0 = found
    t = kit.at_local_hour(customer, t0, 8.0, 22.0)
    device = kit.own_device(customer, t)
    credential = None
    if kit.rng.random() < 0.25:
        device = int(kit.world.new_device_ids(kit.rng)[0])  # a replacement phone, set up today
        credential = t - kit.rng.uniform(600, 12 * 3600)
        kit.world.add_credential_change(customer, credential)
    amount = round(500 * np.exp(0.8 * c.amount_log_scale[customer]) * kit.rng.lognormal(0.0, 0.7), 2)
    extra = {} if credential is None else {"credential_change": credential}
    return [kit.transfers(customer, t, amount, kit.new_payees(1)[0], device=device, ip=kit.own_ip(customer), city=None,
                         fraud=False, **extra)]  # fmt: skip


def group_collection(kit: Kit) -> list[Part] | None:
    """Friends send their share to one organiser, who books the trip (twin of money_mule_layering)."""
    c, m = kit.world.customers, kit.world.merchants
    found = kit.victim(2 * DAY_S, min_account_age_days=0.0)
    if found is None:
        return None
    organiser, t0 = found
    k = int(kit.rng.integers(3, 7))
    parts, total = [], 0.0
    for t in np.sort(t0 + kit.rng.uniform(0, DAY_S, k)):
        friend = kit.victim_at(float(t), 600.0, min_account_age_days=0.0)
        if friend is None:
            continue
        amount = float(kit.amounts(20, 400, 1)[0])
        total += amount
        parts.append(kit.transfers(friend, t, amount, organiser, device=kit.own_device(friend, float(t)),
                                   ip=kit.own_ip(friend), city=None, fraud=False))  # fmt: skip
    if not parts:
        return None
    legs = incoming_legs(kit.world, build_rows(parts), kit.rng)
    parts.append(Part(n_rows(legs), legs))
    booking_t = t0 + DAY_S + kit.rng.uniform(3600, 0.9 * DAY_S)
    shop = kit.rng.choice(m.online([CAT["TRAVEL"], CAT["HOTEL"]]))
    parts.append(kit.online(organiser, booking_t, round(total * kit.rng.uniform(1.0, 1.5), 2),
                            device=kit.own_device(organiser, booking_t), ip=kit.own_ip(organiser), city=None,
                            fraud=False, merchant=shop, card=int(c.cards[organiser, 0])))  # fmt: skip
    return parts


def first_high_risk(kit: Kit) -> list[Part] | None:
    """A birthday gift card or a first crypto purchase (twin of high_risk_merchant)."""
    c, m = kit.world.customers, kit.world.merchants
    found = kit.victim(3600.0, min_account_age_days=0.0)
    if found is None:
        return None
    customer, t0 = found
    category = int(
        kit.rng.choice(
            [CAT["GIFT_CARDS"], CAT["GIFT_CARDS"], CAT["CRYPTO"], CAT["GAMBLING"], CAT["MONEY_TRANSFER"]]
        )
    )
    t = kit.at_local_hour(customer, t0, 9.0, 23.0)
    amount = (
        float(kit.rng.choice([25.0, 50.0, 100.0]))
        if category == CAT["GIFT_CARDS"]
        else float(kit.amounts(20, 400, 1)[0])
    )
    return [kit.online(customer, t, amount, device=kit.own_device(customer, t), ip=kit.own_ip(customer), city=None,
                      fraud=False, merchant=kit.rng.choice(m.online([category])), card=int(c.cards[customer, 0]))]  # fmt: skip


def new_device_shopping(kit: Kit) -> list[Part] | None:
    """Web purchases from a device never seen before: a new laptop, the office PC (twin of cnp_credential_leak)."""
    c, m = kit.world.customers, kit.world.merchants
    found = kit.victim(DAY_S, min_account_age_days=0.0)
    if found is None:
        return None
    customer, t0 = found
    k = int(kit.rng.integers(1, 4))
    t = spread(kit.rng, kit.at_local_hour(customer, t0, 8.0, 23.0), k, 300, 4 * 3600)
    shop = kit.rng.choice(
        m.online([CAT["ELECTRONICS"], CAT["ONLINE_MARKETPLACE"], CAT["RETAIL"], CAT["TRAVEL"]]), k
    )
    amount = np.array([kit.typical_amount(customer, int(m.category[x])) for x in shop]) * kit.rng.uniform(
        0.5, 3, k
    )
    device = int(kit.world.new_device_ids(kit.rng)[0])
    return [kit.online(customer, t, np.round(amount, 2), device=device, ip=kit.own_ip(customer, k), city=None, fraud=False,
                      merchant=shop, card=int(c.cards[customer, 0]))]  # fmt: skip


#: Look-alike generators and how many of them per million transactions (independent of the fraud rate).
LOOKALIKES = (
    (shopping_spree, 600),
    (night_out, 500),
    (decline_then_retry, 700),
    (big_purchase, 900),
    (moving_house, 120),
    (new_payee_payment, 500),
    (group_collection, 80),
    (first_high_risk, 600),
    (new_device_shopping, 500),
)
