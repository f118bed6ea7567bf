"""The bank's customers: where they live, how they spend, when, with which cards, devices and payees.

Everything a customer does "as usual" is fixed here, once, as arrays indexed by customer: the
legit background (`background.py`) samples from these habits and fraud episodes break them. The
habits deliberately include the legit look-alikes of fraud signals: night owls, gamblers and
crypto buyers, cross-border residents, households sharing a tablet, brand-new accounts, people
who buy a new phone or change their password, and travellers (`trips.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fraudops_simulator.geography import (
    CITIES,
    HOME_CITIES,
    ISSUER,
    carrier_prefixes,
    ip_prefix_24,
    isp_first_octets,
)
from fraudops_simulator.merchants import N_CATEGORIES, ONLINE_SHARE, Merchants
from fraudops_simulator.params import DAY_S
from fraudops_simulator.rows import CAT, EXTERNAL_BENEFICIARY_BASE

MAX_USUAL_MERCHANTS = 30
MAX_BENEFICIARIES = 5

# Local-hour activity profiles (relative weights per hour 0..23).
_HOUR_WEIGHTS = np.array(
    [
        # day people: shops, lunch, errands
        [0.2, 0.1, 0.05, 0.05, 0.05, 0.2, 0.8, 2, 3.5, 5, 6, 7, 8, 7.5, 7, 7, 7, 7, 6, 4.5, 3, 1.8, 1, 0.5],
        # evening people: after work, dinners, online in the evening
        [
            0.6,
            0.3,
            0.15,
            0.1,
            0.1,
            0.2,
            0.5,
            1.2,
            2,
            2.5,
            3,
            4,
            5,
            4.5,
            4,
            4.5,
            5.5,
            7,
            8,
            8.5,
            8,
            6,
            3.5,
            1.5,
        ],
        # night owls: shift workers, students, gamers — legit activity at 1–4 a.m.
        [4, 3.5, 2.5, 1.5, 0.8, 0.4, 0.3, 0.5, 1, 1.5, 2, 3, 4, 4, 4, 4, 4.5, 5, 5.5, 6, 6.5, 7, 6.5, 5.5],
    ]
)
HOUR_CDF = np.cumsum(_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum(axis=1, keepdims=True), axis=1)
PROFILE_SHARE = np.array([0.55, 0.33, 0.12])
NIGHT_OWL = 2

# Purchase-category mix per persona: family, young urban, commuter, affluent, senior.
_PERSONA_MIX = {
    "GROCERY": (0.32, 0.18, 0.25, 0.20, 0.40),
    "RESTAURANT": (0.08, 0.22, 0.12, 0.20, 0.10),
    "FUEL": (0.10, 0.02, 0.22, 0.06, 0.05),
    "RETAIL": (0.15, 0.14, 0.10, 0.14, 0.12),
    "ELECTRONICS": (0.03, 0.04, 0.03, 0.05, 0.02),
    "TRAVEL": (0.01, 0.02, 0.015, 0.06, 0.02),
    "HOTEL": (0.005, 0.01, 0.01, 0.04, 0.01),
    "ENTERTAINMENT": (0.04, 0.10, 0.04, 0.06, 0.03),
    "HEALTHCARE": (0.06, 0.02, 0.03, 0.03, 0.12),
    "ONLINE_MARKETPLACE": (0.08, 0.10, 0.07, 0.06, 0.04),
    "DIGITAL_GOODS": (0.05, 0.10, 0.05, 0.03, 0.01),
    "JEWELRY": (0.005, 0.003, 0.003, 0.02, 0.01),
    "GIFT_CARDS": (0.01, 0.01, 0.01, 0.01, 0.01),
    "OTHER": (0.06, 0.04, 0.05, 0.04, 0.06),
    # legit first-timers in high-risk categories (a birthday gift card, a lottery ticket, a first coin)
    "GAMBLING": (0.003, 0.004, 0.003, 0.002, 0.002),
    "CRYPTO": (0.001, 0.003, 0.002, 0.003, 0.0005),
    "MONEY_TRANSFER": (0.003, 0.004, 0.003, 0.002, 0.002),
}
PERSONA_CDF = np.zeros((5, N_CATEGORIES))
for _name, _shares in _PERSONA_MIX.items():
    PERSONA_CDF[:, CAT[_name]] = _shares
PERSONA_CDF = np.cumsum(PERSONA_CDF / PERSONA_CDF.sum(axis=1, keepdims=True), axis=1)
PERSONA_CDF[:, -1] = 1.0

#: Row kinds of the legit background, in the order of Customers.kind_cdf columns.
KINDS = ("purchase", "atm", "transfer", "bill", "refund", "habit", "incoming")


@dataclass
class Customers:
    """Struct of arrays over customers (index = customer = account)."""

    n: int
    home_city: np.ndarray
    home_country: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    utc_offset_h: np.ndarray
    profile: np.ndarray  # 0 day, 1 evening, 2 night owl
    persona: np.ndarray
    activity: np.ndarray  # relative transactions per day
    amount_log_scale: np.ndarray  # log multiplier on category medians: the rich spend more
    opened_s: np.ndarray  # account opened, seconds since start (negative = before)
    closed_s: np.ndarray  # +inf unless a fraud episode ends the account
    payday: np.ndarray  # day of month
    salary: np.ndarray  # 0 = no salary deposit
    employer: np.ndarray  # payer code of the salary (external)
    balance_level: np.ndarray  # 0 low (declines before payday), 1 mid, 2 high
    kind_cdf: np.ndarray  # [n, len(KINDS)]
    usual_merchants: np.ndarray  # [n, MAX_USUAL_MERCHANTS], most used first
    n_usual: np.ndarray
    usual_atm_terminal: np.ndarray
    habit_merchant: np.ndarray  # gambling / crypto habit (-1 none)
    bill_merchant: np.ndarray
    app_user: np.ndarray  # digital rows come from the mobile app (else the web)
    devices: np.ndarray  # [n, 2]: phone, laptop (-1 none)
    new_device: np.ndarray  # a new phone bought during the span (-1 none)
    new_device_s: np.ndarray  # when (inf none)
    household_device: np.ndarray  # a tablet shared with 1–2 other customers (-1 none)
    ip_prefix: np.ndarray  # home ISP /24
    carrier_prefix: np.ndarray  # mobile carrier NAT /24
    cards: np.ndarray  # [n, 2] (-1 none)
    beneficiaries: np.ndarray  # [n, MAX_BENEFICIARIES] codes (-1 none)
    beneficiary_amount: np.ndarray  # usual amount per payee
    n_beneficiaries: np.ndarray
    credential_change_s: np.ndarray  # last password / phone / e-mail change before the start


def _categorical(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row-wise inverse-CDF sampling: cdf is [n, k] (or broadcastable), u is [n]."""
    return (u[:, None] > cdf).sum(axis=1)


def build_customers(n: int, span_s: float, merchants: Merchants, rng: np.random.Generator) -> Customers:
    """A population of `n` customers with realistic, varied habits."""
    home_weight = CITIES.home_weight[HOME_CITIES].copy()
    domestic = CITIES.country[HOME_CITIES] == ISSUER
    home_weight[domestic] *= 0.92 / home_weight[domestic].sum()
    home_weight[~domestic] *= 0.08 / home_weight[~domestic].sum()
    home_city = rng.choice(HOME_CITIES, size=n, p=home_weight).astype(np.int16)
    home_country = CITIES.country[home_city]

    wealth = rng.normal(0.0, 0.5, n) + np.where(rng.random(n) < 0.05, 1.0, 0.0)
    opened_s = np.where(
        rng.random(n) < 0.05,
        rng.uniform(0.0, span_s * 0.9, n),  # brand-new accounts opened during the span
        -np.exp(rng.uniform(np.log(20 * DAY_S), np.log(15 * 365 * DAY_S), n)),
    )
    balance_level = np.clip(np.round(1 + wealth + rng.normal(0, 0.5, n)), 0, 2).astype(np.int8)

    # kinds: purchase, atm, transfer, bill, refund, habit
    transfers = rng.random(n) < 0.45
    habit = np.where(rng.random(n) < 0.07, rng.integers(0, 2, n), -1)  # 0 gambling, 1 crypto
    shares = np.column_stack(
        [
            np.full(n, 1.0),
            rng.lognormal(np.log(0.07), 0.6, n),
            np.where(transfers, rng.lognormal(np.log(0.06), 0.5, n), 0.0),
            np.full(n, 0.03),
            np.full(n, 0.006),
            np.where(habit >= 0, rng.uniform(0.05, 0.2, n), 0.0),
            rng.lognormal(np.log(0.012), 0.5, n),  # money from outside: friends paying back, sales
        ]
    )
    kind_cdf = np.cumsum(shares / shares.sum(axis=1, keepdims=True), axis=1)
    kind_cdf[:, -1] = 1.0

    persona = rng.integers(0, 5, n).astype(np.int8)
    usual, n_usual = _usual_merchants(home_city, persona, merchants, rng)
    cash_terminals = merchants.pick_terminal(
        merchants.pick_pos(home_city, np.full(n, CAT["CASH"]), rng.random(n)), rng.random(n)
    )
    habit_category = np.where(habit == 0, CAT["GAMBLING"], CAT["CRYPTO"])
    habit_merchant = np.where(habit >= 0, merchants.pick_online(habit_category, rng.random(n)), -1)

    devices = np.column_stack([np.arange(n), np.where(rng.random(n) < 0.6, n + np.arange(n), -1)])
    buys_phone = rng.random(n) < 0.10
    household = rng.random(n) < 0.06
    members = np.flatnonzero(household)
    members = members[np.argsort(home_city[members], kind="stable")]  # households live in one city
    household_id = np.zeros(n, dtype=np.int64)
    household_id[members] = np.arange(len(members)) // 3
    cards = np.column_stack([np.arange(n), np.where(rng.random(n) < 0.3, n + np.arange(n), -1)])
    beneficiaries, amounts, n_ben = _beneficiaries(n, transfers, wealth, rng)
    payday = rng.choice(np.array([1, 15, 25, 28, 30]), size=n, p=[0.25, 0.15, 0.2, 0.15, 0.25])
    return Customers(
        n=n,
        home_city=home_city,
        home_country=home_country,
        lat=np.round(CITIES.lat[home_city] + rng.normal(0, 0.04, n), 5),
        lon=np.round(CITIES.lon[home_city] + rng.normal(0, 0.06, n), 5),
        utc_offset_h=CITIES.utc_offset_h[home_city],
        profile=rng.choice(3, size=n, p=PROFILE_SHARE).astype(np.int8),
        persona=persona,
        activity=rng.lognormal(0.0, 0.6, n),
        amount_log_scale=wealth,
        opened_s=opened_s,
        closed_s=np.full(n, np.inf),
        payday=payday.astype(np.int8),
        salary=np.where(rng.random(n) < 0.85, 2400 * np.exp(0.8 * wealth + rng.normal(0, 0.2, n)), 0.0),
        employer=EXTERNAL_BENEFICIARY_BASE + 10**11 + rng.integers(0, max(1, n // 40), n),
        balance_level=balance_level,
        kind_cdf=kind_cdf,
        usual_merchants=usual,
        n_usual=n_usual,
        usual_atm_terminal=cash_terminals,
        habit_merchant=habit_merchant.astype(np.int32),
        bill_merchant=merchants.pick_online(np.full(n, CAT["UTILITIES"]), rng.random(n)),
        app_user=rng.random(n) < 0.75,
        devices=devices.astype(np.int64),
        new_device=np.where(buys_phone, 2 * n + np.arange(n), -1).astype(np.int64),
        new_device_s=np.where(buys_phone, rng.uniform(0, span_s, n), np.inf),
        household_device=np.where(household, 3 * n + household_id, -1).astype(np.int64),
        ip_prefix=ip_prefix_24(isp_first_octets(home_country) + rng.integers(0, 2, n), rng),
        carrier_prefix=carrier_prefixes(home_country, rng),
        cards=cards.astype(np.int64),
        beneficiaries=beneficiaries,
        beneficiary_amount=amounts,
        n_beneficiaries=n_ben,
        credential_change_s=np.maximum(opened_s, -rng.uniform(0, 3 * 365 * DAY_S, n)),
    )


def _usual_merchants(
    home_city: np.ndarray, persona: np.ndarray, merchants: Merchants, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """5–30 merchants near home (or online) per customer, drawn from the persona's category mix."""
    n = len(home_city)
    slots = MAX_USUAL_MERCHANTS
    category = _categorical(PERSONA_CDF[np.repeat(persona, slots)], rng.random(n * slots))
    city = np.repeat(home_city, slots)
    pos = merchants.pick_pos(city, category, rng.random(n * slots))
    online = merchants.pick_online(category, rng.random(n * slots))
    go_online = (rng.random(n * slots) < ONLINE_SHARE[category]) | (pos < 0)
    chosen = np.where(go_online & (online >= 0), online, pos)
    fallback = merchants.pick_pos(city, np.full(n * slots, CAT["GROCERY"]), rng.random(n * slots))
    chosen = np.where(chosen < 0, fallback, chosen).reshape(n, slots).astype(np.int32)
    n_usual = np.clip(np.round(rng.lognormal(np.log(12), 0.5, n)), 5, slots).astype(np.int8)
    return chosen, n_usual


def _beneficiaries(
    n: int, transfers: np.ndarray, wealth: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Regular payees: family and friends at our bank (our accounts), landlords, external payees.

    A small set of landlord customers receive rent from several tenants around the 1st — the legit
    look-alike of the fan-in that money mules show.
    """
    n_ben = np.where(transfers, rng.integers(1, MAX_BENEFICIARIES + 1, n), 0).astype(np.int8)
    slot = np.arange(MAX_BENEFICIARIES)[None, :]
    used = slot < n_ben[:, None]
    internal = rng.random((n, MAX_BENEFICIARIES)) < 0.3
    friends = rng.integers(0, n, (n, MAX_BENEFICIARIES))
    external = EXTERNAL_BENEFICIARY_BASE + rng.integers(1, 10**11, (n, MAX_BENEFICIARIES))
    codes = np.where(internal, friends, external)
    amounts = np.round(120 * np.exp(wealth[:, None] * 0.7 + rng.normal(0, 0.8, (n, MAX_BENEFICIARIES))), 0)
    # the first payee of 25% of transferers is a landlord: a fixed monthly rent
    pays_rent = used[:, 0] & (rng.random(n) < 0.25)
    landlords = rng.choice(n, size=max(1, n // 100), replace=False)
    landlord = np.where(rng.random(n) < 0.35, landlords[rng.integers(0, len(landlords), n)], codes[:, 0])
    codes[:, 0] = np.where(pays_rent, landlord, codes[:, 0])
    amounts[:, 0] = np.where(
        pays_rent, np.round(rng.uniform(450, 1600, n) * np.exp(0.3 * wealth), -1), amounts[:, 0]
    )
    codes = np.where(used, codes, -1).astype(np.int64)
    amounts = np.where(used, np.maximum(amounts, 5.0), 0.0)
    return codes, amounts, n_ben
