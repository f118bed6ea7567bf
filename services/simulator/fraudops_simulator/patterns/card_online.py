"""Card-not-present fraud: leaked card numbers used on the web by someone with another device.

Each pattern's signature and its legit look-alikes are tabled in the simulator's README.md.
"""

from __future__ import annotations

import numpy as np

from fraudops_simulator.patterns.kit import DECLINES, Kit, spread
from fraudops_simulator.rows import AUTH, CAT, Part

_RESALE = [CAT["ELECTRONICS"], CAT["ONLINE_MARKETPLACE"], CAT["GIFT_CARDS"], CAT["DIGITAL_GOODS"]]
_CNP_SHOPS = [
    CAT["ELECTRONICS"],
    CAT["ONLINE_MARKETPLACE"],
    CAT["DIGITAL_GOODS"],
    CAT["TRAVEL"],
    CAT["RETAIL"],
    CAT["HOTEL"],
]
_GIFT_CARD_VALUES = np.array([25.0, 50.0, 100.0, 150.0, 200.0, 250.0])


def card_testing(kit: Kit, n_fraud: int) -> list[Part] | None:
    """A bought card number is tested with micro amounts (some declined), then used for a big purchase."""
    m = kit.world.merchants
    found = kit.victim(3 * 86_400.0, at_home=False)
    if found is None:
        return None
    customer, t0 = found
    card = kit.card(customer)
    n_big = 2 if n_fraud >= 6 and kit.rng.random() < 0.5 else 1
    n_test = n_fraud - n_big
    city = kit.fraud_origin(domestic_share=0.3)
    bot_device = int(kit.rng.choice(kit.ring.devices))
    test_t = spread(kit.rng, t0, n_test, 20, 300)
    test_amount = np.where(kit.rng.random(n_test) < 0.4, 1.0, np.round(kit.rng.uniform(0.5, 3.0, n_test), 2))
    auth = np.where(kit.rng.random(n_test) < 0.5, kit.rng.choice(DECLINES, n_test), AUTH["APPROVED"])
    auth[0] = kit.rng.choice(DECLINES)  # a test run always hits a wrong expiry / CVV guess
    auth[-1] = AUTH["APPROVED"] if n_test > 1 else auth[-1]
    testing_merchant = kit.rng.choice(kit.ring.testing_merchants)
    tests = kit.online(
        customer, test_t, test_amount, device=bot_device, ip=kit.fraud_ip(city, n_test), city=city, fraud=True,
        merchant=testing_merchant, card=card, auth=auth,
    )  # fmt: skip
    big_t = spread(kit.rng, test_t[-1] + kit.rng.uniform(1800, 2 * 86_400.0), n_big, 120, 3600)
    buyer_city = kit.fraud_origin(domestic_share=0.5)
    big = kit.online(
        customer, big_t, kit.amounts(150, 1800, n_big), device=kit.fraud_device(), ip=kit.fraud_ip(buyer_city, n_big),
        city=buyer_city, fraud=True, merchant=m.risky_choice(kit.rng, m.online(_RESALE), n_big), card=card,
    )  # fmt: skip
    return [tests, big]


def high_risk_merchant(kit: Kit, n_fraud: int) -> list[Part] | None:
    """Cash-out through gambling, gift cards, crypto or money transfer by someone who never used them."""
    c, m = kit.world.customers, kit.world.merchants
    found = kit.victim(12 * 3600.0, at_home=False, accept=lambda customer, _t: c.habit_merchant[customer] < 0)
    if found is None:
        return None
    customer, t0 = found
    merchant = m.risky_choice(kit.rng, kit.ring.cashout_merchants, n_fraud)
    t = spread(kit.rng, t0, n_fraud, 120, 3600)
    gift = m.category[merchant] == CAT["GIFT_CARDS"]
    amount = np.where(gift, kit.rng.choice(_GIFT_CARD_VALUES, n_fraud), kit.amounts(40, 900, n_fraud))
    if kit.rng.random() < 0.65:
        city = kit.fraud_origin()
        device, ip = kit.fraud_device(), kit.fraud_ip(city, n_fraud)
    else:  # remote-access malware: the customer's own phone and network
        city, device, ip = None, kit.own_device(customer, t0), kit.own_ip(customer, n_fraud)
    return [
        kit.online(
            customer,
            t,
            amount,
            device=device,
            ip=ip,
            city=city,
            fraud=True,
            merchant=merchant,
            card=kit.card(customer),
        )
    ]


def cnp_credential_leak(kit: Kit, n_fraud: int) -> list[Part] | None:
    """Card details from a breach used for web purchases from a new device and IP."""
    m = kit.world.merchants
    found = kit.victim(2 * 86_400.0, at_home=False)
    if found is None:
        return None
    customer, t0 = found
    city = kit.fraud_origin(domestic_share=0.5)
    t = spread(kit.rng, t0, n_fraud, 300, 8 * 3600)
    merchant = m.risky_choice(kit.rng, m.online(_CNP_SHOPS), n_fraud)
    return [kit.online(
        customer, t, kit.amounts(25, 900, n_fraud), device=kit.fraud_device(), ip=kit.fraud_ip(city, n_fraud), city=city,
        fraud=True, merchant=merchant, card=kit.card(customer),
    )]  # fmt: skip
