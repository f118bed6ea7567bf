"""Fraud on the account rather than the card: someone else in the app, mules, scams, busted accounts.

Each pattern's signature and its legit look-alikes are tabled in the simulator's README.md.
"""

from __future__ import annotations

import numpy as np

from fraudops_simulator.background import deposits
from fraudops_simulator.params import DAY_S
from fraudops_simulator.patterns.kit import Kit, spread
from fraudops_simulator.rows import CAT, CH, Part

_CASHOUT_SHOPS = [CAT["ELECTRONICS"], CAT["JEWELRY"], CAT["GIFT_CARDS"]]


def _wealth(kit: Kit, customer: int) -> float:
    return float(np.exp(0.8 * kit.world.customers.amount_log_scale[customer]))


def account_takeover(kit: Kit, n_fraud: int) -> list[Part] | None:
    """Phished credentials: password/phone changed from a new device, then money leaves to mules."""
    found = kit.victim(DAY_S, min_account_age_days=60.0)
    if found is None:
        return None
    customer, t0 = found
    changed_t = kit.at_local_hour(customer, t0, 7.0, 23.5)
    kit.world.add_credential_change(customer, changed_t)
    city = kit.fraud_origin(domestic_share=0.6)
    device, ip = kit.fraud_device(), kit.fraud_ip(city, n_fraud)
    t = (
        changed_t
        + kit.rng.uniform(120, 6 * 3600)
        + np.concatenate([[0.0], np.cumsum(kit.rng.uniform(60, 2400, n_fraud - 1))])
    )
    amount = kit.amounts(300, 4000, n_fraud) * _wealth(kit, customer) ** 0.5
    if n_fraud >= 3 and kit.rng.random() < 0.3:
        amount[0] = kit.rng.uniform(1, 50)  # a small test transfer first
    payee = np.where(
        kit.rng.random(n_fraud) < 0.6, kit.rng.choice(kit.ring.mule_payees, n_fraud), kit.new_payees(n_fraud)
    )
    return [kit.transfers(
        customer, t, np.round(amount, 2), payee, device=device, ip=ip, city=city, fraud=True, credential_change=changed_t,
    )]  # fmt: skip


def money_mule_layering(kit: Kit, n_fraud: int) -> list[Part] | None:
    """Fan-in from several accounts into a recruited mule, then fan-out to new payees within hours.

    The fan-in shows as DEPOSIT rows on the mule's account whose counterparty is the payer; they
    are labelled fraud together with the fan-out, since the bank loses the money through both.
    """
    c, m = kit.world.customers, kit.world.merchants
    young_or_poor = np.flatnonzero((c.opened_s > -200 * DAY_S) | (c.balance_level == 0))
    found = kit.victim(
        2 * DAY_S, min_account_age_days=3.0, pool=young_or_poor if len(young_or_poor) else None
    )
    if found is None:
        return None
    mule, t0 = found
    n_in = int(np.clip(round(n_fraud * kit.rng.uniform(0.35, 0.6)), 2, n_fraud - 2))
    n_out = n_fraud - n_in
    # fan-in: victims' money (or the previous layer of the ring) arrives from other banks' accounts
    in_times = np.sort(t0 + kit.rng.uniform(0, kit.rng.uniform(2, 24) * 3600, n_in))
    inbound = kit.amounts(300, 2500, n_in)
    inflow = float(inbound.sum())
    payers = np.where(
        kit.rng.random(n_in) < 0.4, kit.rng.choice(kit.ring.mule_payees, n_in), kit.new_payees(n_in)
    )
    parts = [
        Part(n_in, deposits(kit.world, np.full(n_in, mule), in_times, inbound, payer=payers, is_fraud=1))
    ]
    ring_device = kit.fraud_device()
    out_start = in_times[-1] + kit.rng.uniform(600, 6 * 3600)
    out_t = spread(kit.rng, out_start, n_out, 300, 3600)
    shares = kit.rng.dirichlet(np.full(n_out, 2.0)) * inflow * kit.rng.uniform(0.85, 0.97)
    own = kit.rng.random() < 0.7
    device = kit.own_device(mule, out_start) if own else ring_device
    for t, amount in zip(out_t, shares, strict=True):
        roll = kit.rng.random()
        ip = kit.own_ip(mule) if own else kit.fraud_ip(kit.fraud_origin())
        if roll < 0.6:
            payee = kit.rng.choice(kit.ring.mule_payees) if kit.rng.random() < 0.5 else kit.new_payees(1)[0]
            parts.append(
                kit.transfers(mule, t, round(amount, 2), payee, device=device, ip=ip, city=None, fraud=True)
            )
        elif roll < 0.8:
            crypto = kit.rng.choice(m.online([CAT["CRYPTO"], CAT["MONEY_TRANSFER"]]))
            parts.append(kit.online(mule, t, round(amount, 2), device=device, ip=ip, city=None, fraud=True,
                                    merchant=crypto, card=int(c.cards[mule, 0])))  # fmt: skip
        else:
            atm = kit.rng.choice(m.in_city(int(c.home_city[mule]), [CAT["CASH"]]))
            cash = max(20.0, min(1000.0, round(amount / 20) * 20))
            parts.append(kit.at_merchants(mule, t, atm, cash, card=int(c.cards[mule, 0]), fraud=True))
    return parts


def app_scam(kit: Kit, n_fraud: int) -> list[Part] | None:
    """Authorised push payment: the customer, on their own phone, pays a scammer — escalating over days."""
    found = kit.victim(6 * DAY_S, min_account_age_days=60.0)
    if found is None:
        return None
    customer, t0 = found
    payee = kit.rng.choice(kit.ring.scam_payees) if kit.rng.random() < 0.8 else kit.new_payees(1)[0]
    days = np.concatenate([[0.0], np.cumsum(kit.rng.uniform(0.1, 2.0, n_fraud - 1))])
    t = np.array([kit.at_local_hour(customer, t0 + d * DAY_S, 9.0, 21.0) for d in days])
    t = np.maximum.accumulate(t + np.arange(n_fraud) * 60.0)
    first = 350 * _wealth(kit, customer) * kit.rng.lognormal(0.0, 0.6)
    amount = np.round(first * np.cumprod(np.concatenate([[1.0], kit.rng.uniform(1.0, 2.0, n_fraud - 1)])), 2)
    device = kit.own_device(customer, float(t[0]))
    return [kit.transfers(
        customer, t, np.minimum(amount, 25_000.0), payee, device=device, ip=kit.own_ip(customer, n_fraud), city=None, fraud=True,
    )]  # fmt: skip


def new_account_fraud(kit: Kit, n_fraud: int) -> list[Part] | None:
    """A synthetic identity: opened days ago, it maxes out with purchases, cash and transfers, then vanishes."""
    c = kit.world.customers
    span = kit.world.config.span_s
    pool = np.flatnonzero((c.opened_s > 0) & (c.opened_s < span - 8 * DAY_S))
    if len(pool) == 0:
        return None
    customer = int(kit.rng.choice(pool))
    t0 = float(c.opened_s[customer] + kit.rng.uniform(0.5, 8) * DAY_S)
    duration = kit.rng.uniform(0.5, 3) * DAY_S
    if t0 + duration > span - DAY_S or kit.world.is_busy(customer, t0 - DAY_S, t0 + duration + DAY_S):
        return None
    kit.world.mark_busy(customer, t0, t0 + duration)
    t = np.sort(t0 + kit.rng.uniform(0, duration, n_fraud))
    parts = _max_out(kit, customer, t, low=100.0, high=3000.0)
    kit.world.close_account(customer, float(t[-1]) + 3600.0)
    return parts


def bust_out(kit: Kit, n_fraud: int) -> list[Part] | None:
    """A customer in good standing for weeks suddenly spends, withdraws and transfers everything."""
    found = kit.victim(
        3 * DAY_S, min_account_age_days=45.0, earliest_s=min(21 * DAY_S, kit.world.config.span_s / 3)
    )
    if found is None:
        return None
    customer, t0 = found
    duration = kit.rng.uniform(0.3, 3) * DAY_S
    t = np.sort(t0 + kit.rng.uniform(0, duration, n_fraud))
    rows = _max_out(kit, customer, t, low=150.0, high=3500.0)
    kit.world.close_account(customer, float(t[-1]) + 3600.0)
    return rows


def _max_out(kit: Kit, customer: int, t: np.ndarray, *, low: float, high: float) -> list[Part]:
    """The account holder themself (own device, own IP) draining credit: shops, web, ATM, transfers."""
    c, m = kit.world.customers, kit.world.merchants
    k = len(t)
    amount = kit.amounts(low, high, k) * np.linspace(0.7, 1.3, k)
    card = int(c.cards[customer, 0])
    home = int(c.home_city[customer])
    device = kit.own_device(customer, float(t[0]))
    parts = []
    for ti, amount_i, roll in zip(t, amount, kit.rng.random(k), strict=True):
        if roll < 0.35:
            shop = m.risky_choice(kit.rng, m.in_city(home, _CASHOUT_SHOPS), 1)[0]
            parts.append(kit.at_merchants(customer, ti, shop, round(amount_i, 2), card=card, fraud=True))
        elif roll < 0.6:
            shop = m.risky_choice(
                kit.rng, m.online([CAT["ELECTRONICS"], CAT["GIFT_CARDS"], CAT["CRYPTO"], CAT["TRAVEL"]]), 1
            )[0]
            parts.append(kit.online(customer, ti, round(amount_i, 2), device=device, ip=kit.own_ip(customer), city=None,
                                    fraud=True, merchant=shop, card=card))  # fmt: skip
        elif roll < 0.8:
            atm = kit.rng.choice(m.in_city(home, [CAT["CASH"]]))
            cash = float(np.clip(round(amount_i / 50) * 50, 200, 1000))
            parts.append(kit.at_merchants(customer, ti, atm, cash, card=card, fraud=True))
        else:
            parts.append(kit.transfers(customer, ti, round(amount_i, 2), kit.new_payees(1)[0], device=device,
                                       ip=kit.own_ip(customer), city=None, fraud=True))  # fmt: skip
    return parts


def shared_device(kit: Kit, n_fraud: int) -> list[Part] | None:
    """One fraudster device logs into many customers' accounts within days (a device farm)."""
    m = kit.world.merchants
    device = (
        int(kit.rng.choice(kit.ring.devices))
        if kit.rng.random() < 0.6
        else int(kit.world.new_device_ids(kit.rng)[0])
    )
    city = kit.fraud_origin(domestic_share=0.5)
    prefix = kit.fraud_ip(city)[0] & ~0xFF
    found = kit.victim(3600.0)
    if found is None:
        return None
    first_victim, t0 = found
    window = kit.rng.uniform(0.5, 5) * DAY_S
    rows_left, parts, victim = n_fraud, [], (first_victim, t0)
    while rows_left > 0:
        customer, tv = victim
        k = min(rows_left, int(kit.rng.integers(1, 3)))
        t = spread(kit.rng, tv, k, 60, 900)
        ip = prefix | kit.rng.integers(1, 255, k)
        if kit.rng.random() < 0.5:
            parts.append(kit.transfers(customer, t, kit.amounts(100, 1500, k), kit.rng.choice(kit.ring.mule_payees, k),
                                       device=device, ip=ip, city=city, fraud=True))  # fmt: skip
        else:
            shop = m.risky_choice(
                kit.rng, m.online([CAT["ELECTRONICS"], CAT["GIFT_CARDS"], CAT["DIGITAL_GOODS"]]), k
            )
            parts.append(kit.online(customer, t, kit.amounts(40, 900, k), device=device, ip=ip, city=city, fraud=True,
                                    merchant=shop, card=int(kit.world.customers.cards[customer, 0]),
                                    channel=CH["MOBILE_APP"]))  # fmt: skip
        rows_left -= k
        if rows_left > 0:
            t_next = min(float(t0 + kit.rng.uniform(0, window)), kit.world.config.span_s - 2 * 3600.0)
            next_customer = kit.victim_at(t_next, 3600.0, min_account_age_days=30.0)
            if next_customer is None:
                break
            victim = (next_customer, t_next)
    if rows_left > 0:
        return None
    return parts
