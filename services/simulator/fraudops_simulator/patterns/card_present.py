"""Fraud with a stolen or cloned physical card: the card is where its owner is not, or acts unlike them.

Each pattern's signature and its legit look-alikes are tabled in the simulator's README.md.
"""

from __future__ import annotations

import numpy as np

from fraudops_simulator.customers import NIGHT_OWL
from fraudops_simulator.geography import ISSUER, city_distance_km
from fraudops_simulator.params import DAY_S
from fraudops_simulator.patterns.kit import Kit
from fraudops_simulator.rows import AUTH, CAT, Part

_STORE_CATEGORIES = [
    CAT["ELECTRONICS"],
    CAT["RETAIL"],
    CAT["JEWELRY"],
    CAT["GIFT_CARDS"],
    CAT["FUEL"],
    CAT["GROCERY"],
]
_ONLINE_RESALE = [CAT["ELECTRONICS"], CAT["ONLINE_MARKETPLACE"], CAT["GIFT_CARDS"], CAT["DIGITAL_GOODS"]]


def burst_fraud(kit: Kit, n_fraud: int) -> list[Part] | None:
    """A stolen card emptied by many quick purchases, in the shops of the owner's city or online."""
    found = kit.victim(2 * 3600.0)
    if found is None:
        return None
    customer, t0 = found
    m, c = kit.world.merchants, kit.world.customers
    t = kit.at_local_hour(customer, t0, 9.5, 20.0) + np.cumsum(kit.rng.uniform(45, 420, n_fraud))
    amount = np.round(kit.amounts(15, 450, n_fraud) * np.linspace(1.0, 1.6, n_fraud), 2)
    auth = np.where(
        np.arange(n_fraud) >= n_fraud - 1,
        kit.rng.choice([AUTH["APPROVED"], AUTH["DECLINED_OTHER"]]),
        AUTH["APPROVED"],
    )
    if kit.rng.random() < 0.65:
        shops = m.in_city(int(c.home_city[customer]), _STORE_CATEGORIES)
        merchant = m.risky_choice(kit.rng, shops, n_fraud)
        return [
            kit.at_merchants(customer, t, merchant, amount, card=kit.card(customer), fraud=True, auth=auth)
        ]
    city = kit.fraud_origin()
    merchant = m.risky_choice(kit.rng, m.online(_ONLINE_RESALE), n_fraud)
    return [kit.online(
        customer, t, amount, device=kit.fraud_device(), ip=kit.fraud_ip(city, n_fraud), city=city, fraud=True,
        merchant=merchant, card=kit.card(customer), auth=auth,
    )]  # fmt: skip


def late_night_fraud(kit: Kit, n_fraud: int) -> list[Part] | None:
    """A card taken at night (bag, bar, break-in) used at 1–5 a.m. by someone who is not a night owl."""
    c, m = kit.world.customers, kit.world.merchants
    found = kit.victim(6 * 3600.0, accept=lambda customer, _t: c.profile[customer] != NIGHT_OWL)
    if found is None:
        return None
    customer, t0 = found
    t = kit.at_local_hour(customer, t0, 1.0, 3.0) + np.cumsum(kit.rng.uniform(120, 1200, n_fraud))
    city = int(c.home_city[customer])
    card = kit.card(customer)
    atms = m.in_city(city, [CAT["CASH"]])
    parts = []
    for i, ti in enumerate(t):
        if i == 0 or kit.rng.random() < 0.6:
            wrong_pin = i == 0 and n_fraud > 1 and kit.rng.random() < 0.35
            parts.append(
                kit.at_merchants(
                    customer, ti, kit.rng.choice(atms), kit.amounts(150, 600, 1, step=20), card=card, fraud=True,
                    auth=AUTH["DECLINED_WRONG_PIN"] if wrong_pin else AUTH["APPROVED"],
                )
            )  # fmt: skip
        else:
            shop = m.online([CAT["GIFT_CARDS"], CAT["ELECTRONICS"], CAT["DIGITAL_GOODS"]])
            parts.append(
                kit.online(
                    customer, ti, kit.amounts(20, 400, 1), device=kit.fraud_device(), ip=kit.fraud_ip(city), city=city,
                    fraud=True, merchant=kit.rng.choice(shop), card=card,
                )
            )  # fmt: skip
    return parts


def impossible_travel(kit: Kit, n_fraud: int) -> list[Part] | None:
    """A cloned card used abroad while the owner has just paid at home: a jump faster than a plane."""
    c, m = kit.world.customers, kit.world.merchants
    found = kit.victim(4 * 3600.0)
    if found is None:
        return None
    customer, t0 = found
    home = int(c.home_city[customer])
    city = kit.foreign_city(
        int(c.home_country[customer]), min_km=1200, home_lat=c.lat[customer], home_lon=c.lon[customer]
    )
    distance_km = city_distance_km(home, city)
    anchor_t = kit.at_local_hour(customer, t0, 8.0, 19.0)
    usual = c.usual_merchants[customer, : c.n_usual[customer]]
    usual = usual[~m.is_online[usual]]
    anchor_merchant = int(usual[0]) if len(usual) else int(m.in_city(home, [CAT["GROCERY"]])[0])
    card = int(c.cards[customer, 0])
    anchor = kit.at_merchants(
        customer, anchor_t, anchor_merchant, round(kit.typical_amount(customer, int(m.category[anchor_merchant])), 2),
        card=card, fraud=False,
    )  # fmt: skip
    # at most 1/1.15 of the time a 1000 km/h plane would need, and at least 10 minutes
    gap_s = max(600.0, kit.rng.uniform(0.15, 0.87) * distance_km / 1000.0 * 3600.0)
    t = anchor_t + gap_s + np.concatenate([[0.0], np.cumsum(kit.rng.uniform(300, 2400, n_fraud - 1))])
    places = m.in_city(
        city, [CAT["CASH"], CAT["ELECTRONICS"], CAT["JEWELRY"], CAT["RETAIL"], CAT["GIFT_CARDS"]]
    )
    merchant = m.risky_choice(kit.rng, places, n_fraud)
    cash = m.category[merchant] == CAT["CASH"]
    amount = np.where(cash, kit.amounts(100, 600, n_fraud, step=20), kit.amounts(60, 900, n_fraud))
    fraud = kit.at_merchants(customer, t, merchant, amount, card=card, fraud=True)
    return [anchor, fraud]


def unexpected_international(kit: Kit, n_fraud: int) -> list[Part] | None:
    """Card used abroad, in shops or at foreign web shops, for a customer who never goes abroad."""
    c, m, trips = kit.world.customers, kit.world.merchants, kit.world.trips

    def never_abroad(customer: int, t0: float) -> bool:
        return c.home_country[customer] == ISSUER and not trips.has_travelled_abroad(customer, t0, ISSUER)

    found = kit.victim(DAY_S, accept=never_abroad)
    if found is None:
        return None
    customer, t0 = found
    city = kit.foreign_city(int(c.home_country[customer]))
    t = t0 + 6 * 3600.0 + np.cumsum(kit.rng.uniform(600, 4 * 3600, n_fraud))
    card = kit.card(customer)
    if kit.rng.random() < 0.6:
        places = m.in_city(
            city,
            [CAT["CASH"], CAT["RETAIL"], CAT["ELECTRONICS"], CAT["RESTAURANT"], CAT["HOTEL"], CAT["JEWELRY"]],
        )
        merchant = m.risky_choice(kit.rng, places, n_fraud)
        cash = m.category[merchant] == CAT["CASH"]
        amount = np.where(cash, kit.amounts(100, 500, n_fraud, step=20), kit.amounts(30, 700, n_fraud))
        return [kit.at_merchants(customer, t, merchant, amount, card=card, fraud=True)]
    shops = m.online(
        [CAT["ELECTRONICS"], CAT["RETAIL"], CAT["ONLINE_MARKETPLACE"], CAT["TRAVEL"], CAT["DIGITAL_GOODS"]]
    )
    shops = shops[m.country[shops] != ISSUER]
    return [kit.online(
        customer, t, kit.amounts(30, 700, n_fraud), device=kit.fraud_device(), ip=kit.fraud_ip(city, n_fraud),
        city=city, fraud=True, merchant=kit.rng.choice(shops, n_fraud), card=card,
    )]  # fmt: skip


def overdraft_probing(kit: Kit, n_fraud: int) -> list[Part] | None:
    """Finding the balance: insufficient-funds declines with stepping-down amounts, then a hit."""
    c, m = kit.world.customers, kit.world.merchants
    found = kit.victim(3600.0)
    if found is None:
        return None
    customer, t0 = found
    t = t0 + np.cumsum(kit.rng.uniform(20, 240, n_fraud))
    at_atm = kit.rng.random() < 0.55
    first = kit.rng.uniform(500, 1000) if at_atm else kit.rng.uniform(700, 2500)
    amount = first * np.cumprod(np.concatenate([[1.0], kit.rng.uniform(0.55, 0.8, n_fraud - 1)]))
    amount = np.round(amount / 10) * 10 if at_atm else np.round(amount, 2)
    approved_last = n_fraud >= 3 and kit.rng.random() < 0.7
    auth = np.full(n_fraud, AUTH["DECLINED_INSUFFICIENT_FUNDS"])
    if approved_last:
        auth[-1] = AUTH["APPROVED"]
    card = kit.card(customer)
    if at_atm:
        atm = kit.rng.choice(m.in_city(int(c.home_city[customer]), [CAT["CASH"]]))
        return [kit.at_merchants(customer, t, atm, np.maximum(amount, 20), card=card, fraud=True, auth=auth)]
    city = kit.fraud_origin()
    shop = m.risky_choice(kit.rng, m.online(_ONLINE_RESALE), 1)[0]
    return [kit.online(
        customer, t, amount, device=kit.fraud_device(), ip=kit.fraud_ip(city, n_fraud), city=city, fraud=True,
        merchant=shop, card=card, auth=auth,
    )]  # fmt: skip


def compromised_terminal(kit: Kit, n_fraud: int) -> list[Part] | None:
    """A skimmer on one terminal for a few days; weeks later the cloned cards are cashed out elsewhere.

    The terminal's own transactions are legit (the customers really paid there): only the later
    uses of the cloned cards are fraud, which is why terminal risk must come from delayed labels.
    """
    c, m = kit.world.customers, kit.world.merchants
    span = kit.world.config.span_s
    if span < 10 * DAY_S:
        return None
    city = int(kit.rng.choice(c.home_city))
    residents = np.flatnonzero(c.home_city == city)
    skim_start = kit.rng.uniform(0, max(DAY_S, span - 30 * DAY_S))
    skim_end = skim_start + kit.rng.uniform(1, 4) * DAY_S
    n_skimmed = int(min(len(residents), max(n_fraud, round(n_fraud * kit.rng.uniform(1.3, 3.0)))))
    merchant = int(kit.rng.choice(m.in_city(city, [CAT["FUEL"], CAT["CASH"], CAT["GROCERY"], CAT["RETAIL"]])))
    terminal = int(m.pick_terminal(np.array([merchant]), kit.rng.random(1))[0])
    cashout_city = kit.fraud_origin(domestic_share=0.3)
    if cashout_city == city:
        cashout_city = kit.foreign_city(ISSUER)
    skimmed: list[tuple[int, float]] = []
    for customer in kit.rng.permutation(residents):
        use_t = float(kit.rng.uniform(skim_start, skim_end))
        if (
            c.opened_s[customer] > use_t - DAY_S
            or c.closed_s[customer] < span
            or kit.world.is_busy(customer, use_t - DAY_S, span)
        ):
            continue
        if kit.world.trips.is_away(int(customer), use_t - DAY_S, use_t + DAY_S):
            continue
        skimmed.append((int(customer), use_t))
        if len(skimmed) == n_skimmed:
            break
    if len(skimmed) < min(n_fraud, 2):
        return None
    category = int(m.category[merchant])
    parts = []
    for customer, use_t in skimmed:
        amount = (
            kit.amounts(40, 300, 1, step=20)
            if category == CAT["CASH"]
            else [round(kit.typical_amount(customer, category), 2)]
        )
        parts.append(
            kit.at_merchants(
                customer,
                use_t,
                merchant,
                amount,
                card=int(c.cards[customer, 0]),
                fraud=False,
                terminal=terminal,
            )
        )
    # spread the fraud rows over the skimmed cards, 1–3 rows each
    cards_hit = min(len(skimmed), max(1, int(np.ceil(n_fraud / kit.rng.uniform(1.0, 2.5)))))
    per_card = np.ones(cards_hit, dtype=np.int64) + kit.rng.multinomial(
        n_fraud - cards_hit, np.full(cards_hit, 1 / cards_hit)
    )
    cashout_start = skim_end + kit.rng.uniform(2, min(25, max(2.5, (span - skim_end) / DAY_S - 1))) * DAY_S
    places = m.in_city(cashout_city, [CAT["CASH"], CAT["ELECTRONICS"], CAT["RETAIL"], CAT["JEWELRY"]])
    for (customer, _), k in zip(skimmed[:cards_hit], per_card, strict=True):
        t = cashout_start + kit.rng.uniform(0, 2 * DAY_S) + np.cumsum(kit.rng.uniform(300, 3600, k))
        where = m.risky_choice(kit.rng, places, int(k))
        cash = m.category[where] == CAT["CASH"]
        amount = np.where(cash, kit.amounts(100, 500, int(k), step=20), kit.amounts(50, 600, int(k)))
        parts.append(kit.at_merchants(customer, t, where, amount, card=int(c.cards[customer, 0]), fraud=True))
        kit.world.mark_busy(customer, float(t[0]) - DAY_S, float(t[-1]) + DAY_S)
    return parts


def amount_anomaly(kit: Kit, n_fraud: int) -> list[Part] | None:
    """One or two purchases far above anything the customer spends, at a new merchant."""
    c, m = kit.world.customers, kit.world.merchants
    found = kit.victim(3 * 3600.0, earliest_s=5 * DAY_S)
    if found is None:
        return None
    customer, t0 = found
    t = kit.at_local_hour(customer, t0, 10.0, 20.0) + np.cumsum(kit.rng.uniform(600, 5400, n_fraud))
    category = int(kit.rng.choice([CAT["ELECTRONICS"], CAT["JEWELRY"], CAT["RETAIL"], CAT["TRAVEL"]]))
    factor = kit.rng.uniform(6, 25, n_fraud)
    amount = np.minimum(np.round(kit.typical_amount(customer, category) * factor, 2), 9_000.0)
    card = kit.card(customer)
    if category != CAT["TRAVEL"] and kit.rng.random() < 0.6:
        merchant = m.risky_choice(kit.rng, m.in_city(int(c.home_city[customer]), [category]), n_fraud)
        return [kit.at_merchants(customer, t, merchant, amount, card=card, fraud=True)]
    city = kit.fraud_origin(domestic_share=0.7)
    return [kit.online(
        customer, t, amount, device=kit.fraud_device(), ip=kit.fraud_ip(city, n_fraud), city=city, fraud=True,
        merchant=m.risky_choice(kit.rng, m.online([category]), n_fraud), card=card,
    )]  # fmt: skip


def rogue_terminal(kit: Kit, n_fraud: int) -> list[Part] | None:
    """A colluding merchant's terminal charges cloned cards of the city's residents for two to four weeks.

    Each victim is charged once or twice, at the kind of amount they spend there anyway, in shop
    hours, in their own city: alone, every charge looks ordinary. What gives it away is the terminal:
    customers it never served before, and a fraud rate that the delayed labels reveal.
    """
    c, m, span = kit.world.customers, kit.world.merchants, kit.world.config.span_s
    duration = kit.rng.uniform(14, 28) * DAY_S
    earliest = max(kit.not_before_s, 2 * DAY_S)
    if span - duration - DAY_S <= earliest:
        return None
    t0 = float(kit.rng.uniform(earliest, span - duration - DAY_S))
    city = int(kit.rng.choice(c.home_city))
    shops = m.in_city(city, [CAT["RETAIL"], CAT["ELECTRONICS"], CAT["RESTAURANT"], CAT["FUEL"]])
    if len(shops) == 0:
        return None
    merchant = int(m.risky_choice(kit.rng, shops)[0])
    terminal = int(m.pick_terminal(np.array([merchant]), kit.rng.random(1))[0])
    category = int(m.category[merchant])
    parts, made = [], 0
    for customer in kit.rng.permutation(np.flatnonzero(c.home_city == city)):
        if made == n_fraud:
            break
        customer = int(customer)
        t = kit.at_local_hour(customer, float(kit.rng.uniform(t0, t0 + duration)), 9.0, 21.0)
        k = min(n_fraud - made, 2 if kit.rng.random() < 0.3 else 1)
        times = t + np.concatenate([[0.0], kit.rng.uniform(3600.0, 2 * DAY_S, k - 1)])
        if (
            times[0] < DAY_S
            or times[-1] > span - DAY_S
            or c.opened_s[customer] > times[0] - 30 * DAY_S
            or c.closed_s[customer] < times[-1] + DAY_S
            or kit.world.is_busy(customer, times[0] - DAY_S, times[-1] + DAY_S)
            or kit.world.trips.is_away(customer, times[0] - DAY_S, times[-1] + DAY_S)
        ):
            continue
        amount = np.round(kit.typical_amount(customer, category) * kit.rng.lognormal(0.0, 0.3, k), 2)
        parts.append(
            kit.at_merchants(customer, times, merchant, np.maximum(amount, 1.0), card=kit.card(customer), fraud=True,
                             terminal=terminal)
        )  # fmt: skip
        kit.world.mark_busy(customer, float(times[0]) - DAY_S, float(times[-1]) + DAY_S)
        made += k
    return parts if made == n_fraud else None
